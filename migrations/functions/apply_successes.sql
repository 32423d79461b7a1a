-- Applies a set of step results in the caller's transaction: the successes
-- among p_msgs (result messages as read from the results queue, with their
-- p_ids there), as a set; everything else is left to the caller (failures,
-- whose next state depends on the step's retry policy, decided in Rust, and
-- anything that is not a well-formed success). Returns one
-- tasker.applied_result per applied message (NULL when none is a success).
-- Two callers: the orchestrator's take (tasker.take_step_results) and a
-- worker's report that applies its own successes (tasker.report_outcomes;
-- its p_ids are minus the outcomes' positions, as they were never queued).
--
-- Few statements and no subtransaction of its own (the callers hold one).
-- Measured on the 2-core VM: the take of one result cost 0.42 ms when called
-- in a tight loop, but 1.1-1.4 ms inside the benchmark. A backend woken from
-- idle runs with cold caches, so its cost grows with the code and data it
-- touches: every statement (executor start-up, plan lookup, snapshot) and
-- every subtransaction counts several times over on the sequential path. This
-- runs 6 statements plus one per pool:
--
--   1. parse the successes (plain casts: a message they cannot read raises,
--      and the caller falls back to its one-by-one path);
--   2. lock the batch's tasks (id order; every writer of a task's steps holds
--      its task's lock, so the steps need no lock of their own here);
--   3. record every result, complete the current steps, audit, delete the
--      messages;
--   4. release the children of the completed steps and move the ready ones
--      to `enqueued`, audited, in the same statement;
--   5. per pool, their messages (the one dynamic statement);
--   6. decide each task's state (one statement for the batch) and record the
--      tasks that change through tasker.evaluate_task;
--   7. answer.
--
-- Concurrency limits (docs/flow-control.md): a released child under a step
-- limit stays pending (held); when the batch completed or held a step of a
-- group, or finished a task of a template group, tasker.admit_held /
-- tasker.admit_tasks run for those groups after 5 (nothing more when the
-- batch has none), and the queues they sent to are reported on every current
-- result.
--
-- Anything raised here is the caller's to roll back (both callers run this in
-- a subtransaction and hand the batch back unapplied). The transitions applied here
-- (enqueued_for_orchestration -> complete, pending -> enqueued, pending ->
-- waiting for a wait step, which gets no message) are checked against
-- engine/model/src/state.rs by the tests rather than on every call. Audit rows
-- are stamped with clock_timestamp() (see transition_task.sql).
--
-- Plans: a batch touches a few rows of large tables, by primary key. The
-- statements are planned once per connection (force_generic_plan): with array
-- parameters the planner kept choosing custom plans, re-planned on every call.
-- enable_seqscan = off: every statement here reads its rows by key. While
-- the tables are small (a new database) the planner prefers sequential scans,
-- and a scan of tasker.tasks resolves the MultiXact of every row that
-- foreign-key checks share-locked and a report updated: a cost that grows with
-- the table (docs/performance.md, session 14). Nested calls inherit it.
CREATE OR REPLACE FUNCTION tasker.apply_successes(p_ids bigint[], p_msgs jsonb[], p_processor text)
RETURNS tasker.applied_result[]
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    s_ids bigint[];
    s_tasks uuid[];
    s_steps uuid[];
    s_attempts integer[];
    s_results jsonb[];
    s_workers text[];
    s_started timestamptz[];
    s_finished timestamptz[];
    v_dup boolean;
    n integer;
    v_found boolean[];
    v_current boolean[];
    v_state text[];
    v_attempts integer[];
    v_before text[];
    v_done uuid[];
    v_ready uuid[] := '{}';
    v_ready_queues text[];
    v_ready_msgs jsonb[];
    v_task record;
    v_after jsonb := '{}';
    v_rows tasker.applied_result[];
    v_groups text[];
    v_held_groups text[];
    v_task_groups text[] := '{}';
    v_admitted text[] := '{}';
BEGIN
    -- 1. Parse. Successes sorted by task then step: the lock order.
    WITH parsed AS (
        SELECT t.msg_id, p.*,
               coalesce(p.task_id IS NOT NULL AND p.step_id IS NOT NULL AND p.attempt >= 0
                        AND p.started_at IS NOT NULL AND p.finished_at IS NOT NULL,
                        false) AS ok
          FROM unnest(p_ids, p_msgs) AS t(msg_id, message)
          LEFT JOIN LATERAL (
               SELECT (t.message->>'task_id')::uuid AS task_id,
                      (t.message->>'step_id')::uuid AS step_id,
                      (t.message->>'attempt')::integer AS attempt,
                      t.message->'outcome'->'result' AS result,
                      t.message->>'worker_id' AS worker_id,
                      (t.message->>'started_at')::timestamptz AS started_at,
                      (t.message->>'finished_at')::timestamptz AS finished_at
                WHERE t.message->'outcome'->>'status' = 'success'
                  AND t.message->'outcome' ? 'result'
                  AND jsonb_typeof(t.message->'attempt') = 'number'
                  AND jsonb_typeof(t.message->'worker_id') = 'string') p ON true)
    SELECT array_agg(x.msg_id ORDER BY x.task_id, x.step_id, x.msg_id) FILTER (WHERE x.ok),
           array_agg(x.task_id ORDER BY x.task_id, x.step_id, x.msg_id) FILTER (WHERE x.ok),
           array_agg(x.step_id ORDER BY x.task_id, x.step_id, x.msg_id) FILTER (WHERE x.ok),
           array_agg(x.attempt ORDER BY x.task_id, x.step_id, x.msg_id) FILTER (WHERE x.ok),
           array_agg(x.result ORDER BY x.task_id, x.step_id, x.msg_id) FILTER (WHERE x.ok),
           array_agg(x.worker_id ORDER BY x.task_id, x.step_id, x.msg_id) FILTER (WHERE x.ok),
           array_agg(x.started_at ORDER BY x.task_id, x.step_id, x.msg_id) FILTER (WHERE x.ok),
           array_agg(x.finished_at ORDER BY x.task_id, x.step_id, x.msg_id) FILTER (WHERE x.ok),
           count(DISTINCT x.step_id) FILTER (WHERE x.ok) < count(*) FILTER (WHERE x.ok)
      INTO s_ids, s_tasks, s_steps, s_attempts, s_results, s_workers,
           s_started, s_finished, v_dup
      FROM parsed x;
    IF s_ids IS NULL THEN
        RETURN NULL;
    END IF;
    -- Two results for one step (a stale attempt's next to the current
    -- one's) need the one-by-one path's order of events.
    IF v_dup THEN
        RAISE EXCEPTION 'two results for one step in a batch' USING ERRCODE = 'TK003';
    END IF;

    -- 2. The tasks, in id order.
    PERFORM 1 FROM tasker.tasks t WHERE t.id = ANY (s_tasks) ORDER BY t.id FOR UPDATE;

    -- 3. Record, complete, audit, delete.
    WITH input AS (
        SELECT * FROM unnest(s_ids, s_tasks, s_steps, s_attempts, s_results, s_workers,
                             s_started, s_finished)
            WITH ORDINALITY AS i(msg_id, task_id, step_id, attempt, result, worker_id,
                                 started_at, finished_at, ord)),
    cur AS (
        SELECT i.*, s.id IS NOT NULL AS found, s.state AS step_state,
               s.attempts AS step_attempts, t.state AS task_before,
               coalesce(s.state = 'enqueued_for_orchestration' AND s.attempts = i.attempt
                        AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually'),
                        false) AS current
          FROM input i
          LEFT JOIN tasker.steps s ON s.id = i.step_id AND s.task_id = i.task_id
          LEFT JOIN tasker.tasks t ON t.id = s.task_id),
    recorded AS (
        INSERT INTO tasker.step_results (step_id, task_id, attempt, outcome, result, error,
                                         stale, worker_id, started_at, finished_at)
        SELECT c.step_id, c.task_id, c.attempt, 'success', c.result, NULL, NOT c.current,
               c.worker_id, c.started_at, c.finished_at
          FROM cur c WHERE c.found ORDER BY c.ord),
    done AS (
        UPDATE tasker.steps s
           SET state = 'complete', updated_at = now(), completed_at = now(),
               result = c.result, last_error = NULL, next_retry_at = NULL
          FROM cur c
         WHERE c.current AND s.id = c.step_id AND s.state = 'enqueued_for_orchestration'
     RETURNING s.id, s.task_id, s.attempts, s.concurrency_group),
    audit AS (
        INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event,
                                             reason, attempt, processor_id, created_at)
        SELECT d.id, d.task_id, 'enqueued_for_orchestration', 'complete', 'succeeded', NULL,
               d.attempts, p_processor, clock_timestamp()
          FROM done d),
    gone AS (
        DELETE FROM pgmq.q_orchestration_results q
         WHERE q.msg_id = ANY (ARRAY(SELECT c.msg_id FROM cur c WHERE c.found)))
    SELECT array_agg(c.found ORDER BY c.ord), array_agg(c.current ORDER BY c.ord),
           array_agg(c.step_state ORDER BY c.ord),
           array_agg(c.step_attempts ORDER BY c.ord), array_agg(c.task_before ORDER BY c.ord),
           (SELECT array_agg(d.id) FROM done d),
           (SELECT array_agg(DISTINCT d.concurrency_group) FROM done d
             WHERE d.concurrency_group IS NOT NULL)
      INTO v_found, v_current, v_state, v_attempts, v_before, v_done, v_groups
      FROM cur c;
    IF coalesce(cardinality(v_done), 0)
       <> (SELECT count(*) FROM unnest(v_current) x WHERE x) THEN
        RAISE EXCEPTION 'a step changed state underneath a batch of results'
            USING ERRCODE = 'TK001';
    END IF;

    IF v_done IS NOT NULL THEN
        -- 4. One parent fewer to wait for, per completed parent, for
        -- each child; a pending child left waiting for none moves to
        -- enqueued (unless it is under a step concurrency limit: then
        -- it is held, pending); its message goes to its pool's queue.
        WITH released AS (
            UPDATE tasker.steps c
               SET pending_parents = c.pending_parents - k.n,
                   state = CASE WHEN c.state = 'pending' AND c.pending_parents = k.n
                                     AND c.concurrency_group IS NULL
                                THEN CASE WHEN c.wait_seconds IS NULL THEN 'enqueued'
                                          ELSE 'waiting' END
                                ELSE c.state END,
                   next_retry_at = CASE WHEN c.state = 'pending' AND c.pending_parents = k.n
                                        THEN NULL ELSE c.next_retry_at END,
                   -- A wait step begins to wait (tasker.enqueue_steps).
                   attempts = CASE WHEN c.wait_seconds IS NOT NULL AND c.state = 'pending'
                                        AND c.pending_parents = k.n
                                   THEN c.attempts + 1 ELSE c.attempts END,
                   started_at = CASE WHEN c.wait_seconds IS NOT NULL AND c.state = 'pending'
                                          AND c.pending_parents = k.n
                                     THEN now() ELSE c.started_at END,
                   wake_at = CASE WHEN c.wait_seconds IS NOT NULL AND c.state = 'pending'
                                       AND c.pending_parents = k.n
                                  THEN tasker.wait_due_at(c.task_id, c.wait_signal,
                                                          c.wait_seconds, now())
                                  ELSE c.wake_at END,
                   updated_at = now()
              FROM (SELECT e.child_id, count(*)::integer AS n
                      FROM tasker.step_edges e
                     WHERE e.parent_id = ANY (v_done)
                     GROUP BY e.child_id) k
             WHERE c.id = ANY (ARRAY(SELECT e.child_id FROM tasker.step_edges e
                                      WHERE e.parent_id = ANY (v_done)))
               AND c.id = k.child_id
         RETURNING c.id, c.task_id, c.attempts, 'steps_' || c.pool AS queue,
                   c.state = 'enqueued' AND c.pending_parents = 0 AS ready,
                   c.state = 'waiting' AND c.pending_parents = 0
                       AND c.wake_at IS NOT NULL AS waits,
                   CASE WHEN c.state = 'pending' AND c.pending_parents = 0
                        THEN c.concurrency_group END AS held_group),
        moved AS (
            SELECT r.id, r.task_id, r.attempts, r.queue FROM released r WHERE r.ready),
        audit AS (
            INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state,
                                                 event, attempt, processor_id, created_at)
            SELECT r.id, r.task_id, 'pending',
                   CASE WHEN r.ready THEN 'enqueued' ELSE 'waiting' END,
                   'dependencies_met', r.attempts, p_processor, clock_timestamp()
              FROM released r WHERE r.ready OR r.waits)
        SELECT array_agg(m.id ORDER BY m.queue, m.id),
               array_agg(m.queue ORDER BY m.queue, m.id),
               array_agg(jsonb_build_object('step_id', m.id, 'task_id', m.task_id)
                         ORDER BY m.queue, m.id),
               (SELECT array_agg(r.held_group) FROM released r
                 WHERE r.held_group IS NOT NULL)
          INTO v_ready, v_ready_queues, v_ready_msgs, v_held_groups
          FROM moved m;
        v_ready := coalesce(v_ready, '{}');
        v_groups := coalesce(v_groups, '{}') || coalesce(v_held_groups, '{}');

        -- 5. Their messages, on their pools' queues; the held steps
        -- of the groups that freed a slot or held one, admitted.
        PERFORM tasker.send_step_messages(v_ready_queues, v_ready_msgs);
        IF cardinality(v_groups) > 0 THEN
            v_admitted := tasker.admit_held(v_groups, p_processor);
        END IF;

        -- 6. Each task's state from its steps; the ones that change go
        -- through the legal path.
        FOR v_task IN
            SELECT t.id, t.state, t.concurrency_group
              FROM tasker.tasks t
             WHERE t.id = ANY (ARRAY(SELECT DISTINCT x.task_id
                                       FROM unnest(s_tasks, v_current) AS x(task_id, current)
                                      WHERE x.current))
               AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
               AND tasker.decide_task_state(t.id) <> t.state
        LOOP
            v_after := v_after || jsonb_build_object(
                v_task.id::text, tasker.evaluate_task(v_task.id, v_task.state, p_processor));
            -- A finished task of a template limit frees its slot.
            IF v_task.concurrency_group IS NOT NULL
               AND v_after->>(v_task.id::text)
                   IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN
                v_task_groups := v_task_groups || v_task.concurrency_group;
            END IF;
        END LOOP;
        IF cardinality(v_task_groups) > 0 THEN
            v_admitted := v_admitted || tasker.admit_tasks(v_task_groups, p_processor);
        END IF;
    END IF;

    -- 7. What happened to each result. A task's change is reported on
    -- its last current result in the batch (its other results show the
    -- task as it was), so it is announced and finalized once.
    SELECT array_agg(r.a ORDER BY r.ord) INTO v_rows
      FROM (SELECT x.ord, ROW(
                   x.msg_id, x.found, CASE WHEN x.found THEN x.current END,
                   CASE WHEN x.current THEN k.queues || v_admitted
                        WHEN x.found THEN '{}' END,
                   x.step_state, x.step_attempts, x.before,
                   CASE WHEN x.current
                             AND x.ord = max(x.ord) FILTER (WHERE x.current)
                                             OVER (PARTITION BY x.task_id)
                        THEN coalesce(v_after->>(x.task_id::text), x.before)
                        ELSE x.before END,
                   CASE WHEN x.current THEN k.n WHEN x.found THEN 0 END,
                   NULL::text)::tasker.applied_result AS a
              FROM unnest(s_ids, s_tasks, s_steps, v_found, v_current,
                          v_state, v_attempts, v_before)
                   WITH ORDINALITY AS x(msg_id, task_id, step_id, found, current,
                                        step_state, step_attempts, before, ord)
              -- The children this result's step made ready, and their queues.
              LEFT JOIN LATERAL (
                   SELECT count(*)::integer AS n,
                          coalesce(array_agg(DISTINCT 'steps_' || c.pool), '{}') AS queues
                     FROM tasker.step_edges e JOIN tasker.steps c ON c.id = e.child_id
                    WHERE x.current AND e.parent_id = x.step_id
                      AND e.child_id = ANY (v_ready)) k ON true) r;
    RETURN v_rows;
END;
$$;
