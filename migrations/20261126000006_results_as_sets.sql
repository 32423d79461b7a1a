-- Results taken from the queue and applied in one statement, as a set.
--
-- Before: the orchestrator read a batch of results (one statement), then
-- applied them one by one in a per-result subtransaction (a dozen nested
-- statements each, plus the task re-decision per result). Now
-- tasker.take_step_results reads a batch and applies every success in it with
-- a handful of set-based statements (tasker.complete_steps): one round trip,
-- one commit, and the task of several results re-decided once. Failures
-- (whose next state needs the step's retry policy, decided in Rust) and
-- anything unreadable come back unapplied for the caller's per-result path.
-- If the set-based path raises, the batch falls back to that per-result path
-- (tasker.process_step_results), which isolates the failing result.

-- Audit rows keep their task_id / step_id but lose their foreign keys: each
-- insert's referential check locked the task or step row FOR KEY SHARE —
-- about ten per step on the hot path — and concurrent key-share lockers of one
-- task row share a MultiXact. tasker never deletes tasks; a task or step
-- deleted by hand still takes its history with it (triggers below).
ALTER TABLE tasker.step_transitions DROP CONSTRAINT step_transitions_step_id_fkey;
ALTER TABLE tasker.step_results DROP CONSTRAINT step_results_step_id_fkey;
ALTER TABLE tasker.task_transitions DROP CONSTRAINT task_transitions_task_id_fkey;

CREATE FUNCTION tasker.delete_step_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.step_transitions WHERE step_id IN (SELECT id FROM gone);
    DELETE FROM tasker.step_results WHERE step_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;
CREATE TRIGGER steps_history_deleted AFTER DELETE ON tasker.steps
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.delete_step_history();

CREATE FUNCTION tasker.delete_task_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.task_transitions WHERE task_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;
CREATE TRIGGER tasks_history_deleted AFTER DELETE ON tasker.tasks
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.delete_task_history();

-- The results read keeps to the primary key whatever the table statistics say
-- (a join to the locked ids was planned as a hash join over the whole table).
CREATE OR REPLACE FUNCTION tasker.read_results(p_lease_seconds integer, p_qty integer)
RETURNS TABLE (msg_id bigint, read_ct integer, message jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    UPDATE pgmq.q_orchestration_results m
       SET last_read_at = clock_timestamp(),
           vt = clock_timestamp() + make_interval(secs => p_lease_seconds),
           read_ct = m.read_ct + 1
     WHERE m.msg_id = ANY (ARRAY(
               SELECT q.msg_id FROM pgmq.q_orchestration_results q
                WHERE q.vt <= clock_timestamp()
                ORDER BY q.msg_id LIMIT p_qty
                  FOR UPDATE SKIP LOCKED))
    RETURNING m.msg_id, m.read_ct, m.message;
END;
$$;

-- A success message's fields, or NULL when it is not a well-formed success
-- (a failure, or something unreadable: the caller's per-result path handles it).
CREATE FUNCTION tasker.parse_success(p_message jsonb,
    OUT task_id uuid, OUT step_id uuid, OUT attempt integer, OUT result jsonb,
    OUT worker_id text, OUT started_at timestamptz, OUT finished_at timestamptz)
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_message->'outcome'->>'status' IS DISTINCT FROM 'success'
       OR NOT (p_message->'outcome' ? 'result')
       OR jsonb_typeof(p_message->'attempt') IS DISTINCT FROM 'number'
       OR jsonb_typeof(p_message->'worker_id') IS DISTINCT FROM 'string' THEN
        RETURN;
    END IF;
    task_id := (p_message->>'task_id')::uuid;
    step_id := (p_message->>'step_id')::uuid;
    attempt := (p_message->>'attempt')::integer;
    result := p_message->'outcome'->'result';
    worker_id := p_message->>'worker_id';
    started_at := (p_message->>'started_at')::timestamptz;
    finished_at := (p_message->>'finished_at')::timestamptz;
    IF task_id IS NULL OR step_id IS NULL OR attempt IS NULL OR attempt < 0
       OR started_at IS NULL OR finished_at IS NULL THEN
        task_id := NULL;
    END IF;
EXCEPTION WHEN data_exception THEN
    task_id := NULL;
END;
$$;

-- One applied result: the columns of tasker.process_step_results.
CREATE TYPE tasker.applied_result AS (
    msg_id bigint, step_found boolean, is_current boolean, namespace text, step_state text,
    step_attempts integer, task_before text, task_state text, enqueued integer, error text);

-- Applies a batch of successes (distinct steps) as a set: lock the tasks, then
-- the steps, each in id order (every writer takes a task before its steps),
-- record every result, complete the steps whose attempt is current, release
-- their children, enqueue the ones now ready, re-decide each task once, delete
-- the result messages. A task's change is reported on its last current result
-- in the batch (its other results show the task as it was), so it is
-- announced and finalized once.
--
-- Plans: a batch touches a few rows of large tables, by primary key. The
-- statements are planned once per connection: with array parameters the
-- planner kept choosing custom plans, re-planned on every call (~0.5 ms of a
-- one-result batch's ~2 ms, measured in a loop in one session).
CREATE FUNCTION tasker.complete_steps(
    p_msg_ids bigint[], p_tasks uuid[], p_steps uuid[], p_attempts integer[], p_results jsonb[],
    p_workers text[], p_started_at timestamptz[], p_finished_at timestamptz[], p_processor text)
RETURNS SETOF tasker.applied_result
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_found boolean[];
    v_current boolean[];
    v_namespace text[];
    v_state text[];
    v_attempts integer[];
    v_before text[];
    v_done uuid[];
    v_ready uuid[] := '{}';
    v_ready_ns text[];
    v_ns text;
    v_msgs jsonb[];
    v_task record;
    v_after jsonb := '{}';
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.legal_step_transitions
                    WHERE from_state = 'enqueued_for_orchestration' AND to_state = 'complete') THEN
        RAISE EXCEPTION 'illegal step transition enqueued_for_orchestration -> complete' USING ERRCODE = 'TK002';
    END IF;
    PERFORM 1 FROM tasker.tasks t WHERE t.id = ANY (p_tasks) ORDER BY t.id FOR UPDATE;
    PERFORM 1 FROM tasker.steps s WHERE s.id = ANY (p_steps) ORDER BY s.id FOR UPDATE;

    WITH input AS (
        SELECT * FROM unnest(p_msg_ids, p_tasks, p_steps, p_attempts, p_results, p_workers,
                             p_started_at, p_finished_at)
            WITH ORDINALITY AS i(msg_id, task_id, step_id, attempt, result, worker_id,
                                 started_at, finished_at, ord)),
    cur AS (
        SELECT i.*, s.id IS NOT NULL AS found, t.namespace, s.state AS step_state,
               s.attempts AS step_attempts, t.state AS task_before,
               coalesce(s.state = 'enqueued_for_orchestration' AND s.attempts = i.attempt
                        AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually'),
                        false) AS current
          FROM input i
          LEFT JOIN tasker.steps s ON s.id = i.step_id AND s.task_id = i.task_id
          LEFT JOIN tasker.tasks t ON t.id = s.task_id),
    recorded AS (
        INSERT INTO tasker.step_results (step_id, task_id, attempt, outcome, result, error, stale,
                                         worker_id, started_at, finished_at)
        SELECT c.step_id, c.task_id, c.attempt, 'success', c.result, NULL, NOT c.current,
               c.worker_id, c.started_at, c.finished_at
          FROM cur c WHERE c.found ORDER BY c.ord),
    done AS (
        UPDATE tasker.steps s
           SET state = 'complete', updated_at = now(), completed_at = now(), result = c.result,
               last_error = NULL, next_retry_at = NULL
          FROM cur c
         WHERE c.current AND s.id = c.step_id AND s.state = 'enqueued_for_orchestration'
     RETURNING s.id, s.task_id, s.attempts),
    audit AS (
        INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, reason,
                                             attempt, processor_id)
        SELECT d.id, d.task_id, 'enqueued_for_orchestration', 'complete', 'succeeded', NULL,
               d.attempts, p_processor
          FROM done d),
    gone AS (
        DELETE FROM pgmq.q_orchestration_results q
         WHERE q.msg_id = ANY (ARRAY(SELECT c.msg_id FROM cur c WHERE c.found)))
    SELECT array_agg(c.found ORDER BY c.ord), array_agg(c.current ORDER BY c.ord),
           array_agg(c.namespace ORDER BY c.ord), array_agg(c.step_state ORDER BY c.ord),
           array_agg(c.step_attempts ORDER BY c.ord), array_agg(c.task_before ORDER BY c.ord),
           (SELECT array_agg(d.id) FROM done d)
      INTO v_found, v_current, v_namespace, v_state, v_attempts, v_before, v_done
      FROM cur c;
    IF coalesce(cardinality(v_done), 0) <> (SELECT count(*) FROM unnest(v_current) x WHERE x) THEN
        RAISE EXCEPTION 'a step changed state underneath a batch of results' USING ERRCODE = 'TK001';
    END IF;

    IF v_done IS NOT NULL THEN
        -- One parent fewer to wait for, per completed parent, for each child;
        -- the children left waiting for none are ready, grouped by namespace
        -- (a child's is its task's, known from the batch).
        WITH released AS (
            UPDATE tasker.steps c
               SET pending_parents = c.pending_parents
                       - (SELECT count(*) FROM tasker.step_edges e
                           WHERE e.child_id = c.id AND e.parent_id = ANY (v_done)),
                   updated_at = now()
             WHERE c.id = ANY (ARRAY(SELECT e.child_id FROM tasker.step_edges e
                                      WHERE e.parent_id = ANY (v_done)))
         RETURNING c.id, c.task_id, c.pending_parents, c.state),
        batch_tasks AS (
            SELECT DISTINCT u.task_id, u.namespace
              FROM unnest(p_tasks, v_namespace) AS u(task_id, namespace)
             WHERE u.namespace IS NOT NULL)
        SELECT array_agg(b.namespace), array_agg(r.id)
          INTO v_ready_ns, v_ready
          FROM released r JOIN batch_tasks b ON b.task_id = r.task_id
         WHERE r.pending_parents = 0 AND r.state = 'pending';
        v_ready := coalesce(v_ready, '{}');
        -- Enqueue them: state, audit, and a message on their namespace's queue.
        FOR v_ns IN SELECT DISTINCT n FROM unnest(v_ready_ns) AS n LOOP
            WITH moved AS (
                UPDATE tasker.steps s
                   SET state = 'enqueued', next_retry_at = NULL, updated_at = now()
                 WHERE s.id = ANY (ARRAY(SELECT r.id FROM unnest(v_ready, v_ready_ns) AS r(id, ns)
                                          WHERE r.ns = v_ns))
                   AND s.state = 'pending'
             RETURNING s.id, s.task_id, s.attempts),
            audit AS (
                INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event,
                                                     attempt, processor_id)
                SELECT m.id, m.task_id, 'pending', 'enqueued', 'dependencies_met', m.attempts,
                       p_processor
                  FROM moved m)
            SELECT array_agg(jsonb_build_object('step_id', m.id, 'task_id', m.task_id))
              INTO v_msgs FROM moved m;
            EXECUTE format('INSERT INTO pgmq.%I (vt, message) SELECT clock_timestamp(), unnest($1)',
                           'q_steps_' || v_ns)
              USING v_msgs;
        END LOOP;
        FOR v_task IN
            SELECT DISTINCT x.task_id, x.before
              FROM unnest(p_tasks, v_current, v_before) AS x(task_id, current, before)
             WHERE x.current
        LOOP
            v_after := v_after || jsonb_build_object(
                v_task.task_id::text, tasker.evaluate_task(v_task.task_id, v_task.before, p_processor));
        END LOOP;
    END IF;

    RETURN QUERY
    SELECT x.msg_id, x.found,
           CASE WHEN x.found THEN x.current END,
           x.namespace, x.step_state, x.step_attempts, x.before,
           CASE WHEN x.current AND x.ord = max(x.ord) FILTER (WHERE x.current)
                                            OVER (PARTITION BY x.task_id)
                THEN v_after->>(x.task_id::text)
                ELSE x.before END,
           CASE WHEN x.current THEN
                    (SELECT count(*)::integer FROM tasker.step_edges e
                      WHERE e.parent_id = x.step_id AND e.child_id = ANY (v_ready))
                WHEN x.found THEN 0 END,
           NULL::text
      FROM unnest(p_msg_ids, p_tasks, p_steps, v_found, v_current, v_namespace, v_state,
                  v_attempts, v_before)
           WITH ORDINALITY AS x(msg_id, task_id, step_id, found, current, namespace, step_state,
                                step_attempts, before, ord)
     ORDER BY x.ord;
END;
$$;

-- The orchestrator's read of the results queue and the processing of what it
-- read, in one statement and one (durable) commit: reads up to p_qty results
-- (a lease, as tasker.read_results), applies the successes with
-- tasker.complete_steps — or, if that raises, one by one with
-- tasker.process_step_results, which rolls back only the failing one — and
-- returns every message read, with `applied` false for those left to the
-- caller (failures, whose next state depends on the step's retry policy, and
-- anything that is not a well-formed success). An applied result's columns
-- are those of tasker.process_step_results.
CREATE FUNCTION tasker.take_step_results(p_lease_seconds integer, p_qty integer, p_processor text)
RETURNS TABLE (msg_id bigint, read_ct integer, message jsonb, applied boolean,
               step_found boolean, is_current boolean, namespace text, step_state text,
               step_attempts integer, task_before text, task_state text, enqueued integer,
               error text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
    v_cts integer[];
    v_msgs jsonb[];
    s_ids bigint[];
    s_tasks uuid[];
    s_steps uuid[];
    s_attempts integer[];
    s_results jsonb[];
    s_workers text[];
    s_started timestamptz[];
    s_finished timestamptz[];
    n integer;
    v_rows tasker.applied_result[];
BEGIN
    WITH taken AS (
        UPDATE pgmq.q_orchestration_results m
           SET last_read_at = clock_timestamp(),
               vt = clock_timestamp() + make_interval(secs => p_lease_seconds),
               read_ct = m.read_ct + 1
         WHERE m.msg_id = ANY (ARRAY(
                   SELECT q.msg_id FROM pgmq.q_orchestration_results q
                    WHERE q.vt <= clock_timestamp()
                    ORDER BY q.msg_id LIMIT p_qty
                      FOR UPDATE SKIP LOCKED))
        RETURNING m.msg_id, m.read_ct, m.message)
    SELECT array_agg(t.msg_id ORDER BY t.msg_id), array_agg(t.read_ct ORDER BY t.msg_id),
           array_agg(t.message ORDER BY t.msg_id)
      INTO v_ids, v_cts, v_msgs
      FROM taken t;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;

    -- The successes, sorted by task then step: the lock order of every writer.
    SELECT array_agg(x.msg_id ORDER BY p.task_id, p.step_id, x.msg_id),
           array_agg(p.task_id ORDER BY p.task_id, p.step_id, x.msg_id),
           array_agg(p.step_id ORDER BY p.task_id, p.step_id, x.msg_id),
           array_agg(p.attempt ORDER BY p.task_id, p.step_id, x.msg_id),
           array_agg(p.result ORDER BY p.task_id, p.step_id, x.msg_id),
           array_agg(p.worker_id ORDER BY p.task_id, p.step_id, x.msg_id),
           array_agg(p.started_at ORDER BY p.task_id, p.step_id, x.msg_id),
           array_agg(p.finished_at ORDER BY p.task_id, p.step_id, x.msg_id)
      INTO s_ids, s_tasks, s_steps, s_attempts, s_results, s_workers, s_started, s_finished
      FROM unnest(v_ids, v_msgs) AS x(msg_id, message)
     CROSS JOIN LATERAL tasker.parse_success(x.message) p
     WHERE p.task_id IS NOT NULL;

    IF s_ids IS NOT NULL THEN
        n := cardinality(s_ids);
        BEGIN
            -- Two results for one step (a stale attempt's next to the current
            -- one's) need the one-by-one path's order of events.
            IF (SELECT count(DISTINCT s) FROM unnest(s_steps) s) < n THEN
                RAISE EXCEPTION 'two results for one step in a batch' USING ERRCODE = 'TK003';
            END IF;
            SELECT array_agg(c) INTO v_rows
              FROM tasker.complete_steps(s_ids, s_tasks, s_steps, s_attempts, s_results,
                                         s_workers, s_started, s_finished, p_processor) c;
        EXCEPTION WHEN OTHERS THEN
            SELECT array_agg(ROW(c.*)::tasker.applied_result) INTO v_rows
              FROM tasker.process_step_results(
                       s_ids, s_tasks, s_steps, s_attempts, array_fill('success'::text, ARRAY[n]),
                       s_results, array_fill(NULL::jsonb, ARRAY[n]), s_workers, s_started, s_finished,
                       array_fill('complete'::text, ARRAY[n]), array_fill('succeeded'::text, ARRAY[n]),
                       array_fill(NULL::text, ARRAY[n]), array_fill(NULL::timestamptz, ARRAY[n]),
                       p_processor) c;
        END;
    END IF;

    RETURN QUERY
    SELECT x.msg_id, x.read_ct, x.message, a.msg_id IS NOT NULL, a.step_found, a.is_current,
           a.namespace, a.step_state, a.step_attempts, a.task_before, a.task_state, a.enqueued,
           a.error
      FROM unnest(v_ids, v_cts, v_msgs) AS x(msg_id, read_ct, message)
      LEFT JOIN unnest(v_rows) AS a ON a.msg_id = x.msg_id
     ORDER BY x.msg_id;
END;
$$;
