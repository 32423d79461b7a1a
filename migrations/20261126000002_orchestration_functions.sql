-- The orchestration's write paths as SQL functions, so that one result costs
-- one round trip for its writes instead of a dozen.
--
-- On this hot path the queues are used through PGMQ's own tables (pgmq 1.11
-- layout: msg_id, read_ct, enqueued_at, last_read_at, vt, message, headers)
-- with the same statements PGMQ's functions run, but static (results queue) or
-- with one level of dynamic SQL (step queues): pgmq.send_batch / read / delete
-- go through two or three nested functions each and re-plan their dynamic SQL
-- on every call, which measured as a third of the database time per step.
-- Everything else (creation, tooling, tests) uses PGMQ's functions. Decisions that need policy
-- (is this attempt current, retry or fail, when) stay in Rust
-- (engine/src/store/result.rs); these functions only apply them.

-- The legal transitions, written by `tasker migrate` from engine/src/state.rs
-- (the one place the machines are defined). transition_task/transition_step
-- refuse anything not listed. (Not a foreign key from the audit tables: an FK
-- check locks the referenced row, and every transaction in the system would
-- contend on the same few rows.)
CREATE TABLE tasker.legal_task_transitions (
    from_state text NOT NULL,
    to_state   text NOT NULL,
    PRIMARY KEY (from_state, to_state)
);
CREATE TABLE tasker.legal_step_transitions (
    from_state text NOT NULL,
    to_state   text NOT NULL,
    PRIMARY KEY (from_state, to_state)
);

-- Compare-and-set of a task's state plus its audit row. Returns NULL when the
-- task moved, otherwise the state found ('' when there is no such task).
CREATE FUNCTION tasker.transition_task(p_task uuid, p_from text, p_to text, p_event text,
                                       p_reason text, p_processor text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_found text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.legal_task_transitions WHERE from_state = p_from AND to_state = p_to) THEN
        RAISE EXCEPTION 'illegal task transition % -> %', p_from, p_to USING ERRCODE = 'TK002';
    END IF;
    UPDATE tasker.tasks
       SET state = p_to, updated_at = now(),
           completed_at = CASE WHEN p_to IN ('complete', 'error', 'cancelled', 'resolved_manually')
                               THEN now() ELSE completed_at END
     WHERE id = p_task AND state = p_from;
    IF FOUND THEN
        INSERT INTO tasker.task_transitions (task_id, from_state, to_state, event, reason, processor_id)
        VALUES (p_task, p_from, p_to, p_event, p_reason, p_processor);
        RETURN NULL;
    END IF;
    SELECT state INTO v_found FROM tasker.tasks WHERE id = p_task;
    RETURN coalesce(v_found, '');
END;
$$;

-- The same for a step; the audit row carries the step's current attempt.
CREATE FUNCTION tasker.transition_step(p_step uuid, p_from text, p_to text, p_event text,
                                       p_reason text, p_processor text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_task uuid;
    v_attempts integer;
    v_found text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.legal_step_transitions WHERE from_state = p_from AND to_state = p_to) THEN
        RAISE EXCEPTION 'illegal step transition % -> %', p_from, p_to USING ERRCODE = 'TK002';
    END IF;
    UPDATE tasker.steps
       SET state = p_to, updated_at = now(),
           completed_at = CASE WHEN p_to IN ('complete', 'error', 'cancelled', 'resolved_manually')
                               THEN now() ELSE completed_at END
     WHERE id = p_step AND state = p_from
    RETURNING task_id, attempts INTO v_task, v_attempts;
    IF FOUND THEN
        INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, reason, attempt, processor_id)
        VALUES (p_step, v_task, p_from, p_to, p_event, p_reason, v_attempts, p_processor);
        RETURN NULL;
    END IF;
    SELECT state INTO v_found FROM tasker.steps WHERE id = p_step;
    RETURN coalesce(v_found, '');
END;
$$;

-- Moves the given steps that are still in p_from to 'enqueued', audits them and
-- sends their messages to p_queue. Returns how many moved.
CREATE FUNCTION tasker.enqueue_steps(p_queue text, p_steps uuid[], p_from text, p_event text,
                                     p_processor text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_msgs jsonb[];
BEGIN
    IF p_steps IS NULL OR cardinality(p_steps) = 0 THEN
        RETURN 0;
    END IF;
    WITH moved AS (
        UPDATE tasker.steps SET state = 'enqueued', next_retry_at = NULL, updated_at = now()
         WHERE id = ANY (p_steps) AND state = p_from
     RETURNING id, task_id, attempts),
    audit AS (
        INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt, processor_id)
        SELECT id, task_id, p_from, 'enqueued', p_event, attempts, p_processor FROM moved)
    SELECT array_agg(jsonb_build_object('step_id', id, 'task_id', task_id)) INTO v_msgs FROM moved;
    IF v_msgs IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('INSERT INTO pgmq.%I (vt, message) SELECT clock_timestamp(), unnest($1)', 'q_' || p_queue)
        USING v_msgs;
    RETURN cardinality(v_msgs);
END;
$$;

-- One more parent done for each child of p_step; returns the children that no
-- longer wait for any parent and are still pending.
CREATE FUNCTION tasker.release_children(p_step uuid)
RETURNS uuid[] LANGUAGE plpgsql AS $$
DECLARE
    v_ready uuid[];
BEGIN
    -- plpgsql rather than a SQL function: its plan is cached per session.
    WITH released AS (
        UPDATE tasker.steps SET pending_parents = pending_parents - 1, updated_at = now()
         WHERE id IN (SELECT child_id FROM tasker.step_edges WHERE parent_id = p_step)
     RETURNING id, pending_parents, state)
    SELECT coalesce(array_agg(id) FILTER (WHERE pending_parents = 0 AND state = 'pending'), '{}')
      INTO v_ready FROM released;
    RETURN v_ready;
END;
$$;

-- The task state its steps call for.
CREATE FUNCTION tasker.decide_task_state(p_task uuid)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_state text;
BEGIN
    SELECT CASE
        WHEN count(*) FILTER (WHERE state NOT IN ('complete', 'resolved_manually')) = 0 THEN 'complete'
        WHEN count(*) FILTER (WHERE state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration')) > 0
            THEN 'steps_in_process'
        WHEN count(*) FILTER (WHERE state = 'waiting_for_retry') > 0 THEN 'waiting_for_retry'
        WHEN count(*) FILTER (WHERE state IN ('error', 'cancelled')) > 0 THEN 'blocked_by_failures'
        ELSE 'waiting_for_dependencies'
    END INTO v_state
    FROM tasker.steps WHERE task_id = p_task;
    RETURN v_state;
END;
$$;

-- Re-decides a task's state from its steps and records the change through the
-- legal path. The caller holds the task row lock and passes the state it read.
-- Returns the new state.
CREATE FUNCTION tasker.evaluate_task(p_task uuid, p_current text, p_processor text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_next text;
    v_path text[];
    v_at text := p_current;
    v_to text;
    v_found text;
BEGIN
    IF p_current IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN
        RETURN p_current;
    END IF;
    v_next := tasker.decide_task_state(p_task);
    IF v_next = p_current THEN
        RETURN p_current;
    END IF;
    IF v_next = 'steps_in_process'
       AND p_current IN ('waiting_for_retry', 'waiting_for_dependencies', 'blocked_by_failures') THEN
        v_path := ARRAY['enqueuing_steps', 'steps_in_process'];
    ELSE
        v_path := '{}';
        IF v_at = 'enqueuing_steps' THEN
            v_path := v_path || 'steps_in_process';
            v_at := 'steps_in_process';
        END IF;
        IF v_next <> 'steps_in_process' OR p_current = 'evaluating_results' THEN
            IF v_at <> 'evaluating_results' THEN
                v_path := v_path || 'evaluating_results'::text;
            END IF;
            v_path := v_path || v_next;
        END IF;
    END IF;
    v_at := p_current;
    FOREACH v_to IN ARRAY v_path LOOP
        v_found := tasker.transition_task(p_task, v_at, v_to,
            CASE v_to
                WHEN 'complete' THEN 'all_steps_complete'
                WHEN 'steps_in_process' THEN 'steps_in_flight'
                WHEN 'waiting_for_retry' THEN 'waiting_for_retry'
                WHEN 'blocked_by_failures' THEN 'blocked_by_failures'
                WHEN 'waiting_for_dependencies' THEN 'waiting_for_dependencies'
                WHEN 'enqueuing_steps' THEN 'steps_ready'
                ELSE 'evaluate'
            END, NULL, p_processor);
        IF v_found IS NOT NULL THEN
            RAISE EXCEPTION 'task % state changed underneath: expected %, found %', p_task, v_at, v_found
                USING ERRCODE = 'TK001';
        END IF;
        v_at := v_to;
    END LOOP;
    RETURN v_next;
END;
$$;

-- Applies the orchestrator's decision about one result, in the caller's
-- transaction (which holds the task and step row locks): records the attempt,
-- moves the step to p_to (NULL: the result is stale and changes nothing),
-- enqueues the children that became ready, re-decides the task and deletes the
-- result message. Returns the task's state and the number of steps enqueued.
CREATE FUNCTION tasker.apply_step_result(
    p_msg_id bigint, p_task uuid, p_step uuid, p_step_queue text, p_task_state text,
    p_attempt integer, p_outcome text, p_result jsonb, p_error jsonb,
    p_worker text, p_started_at timestamptz, p_finished_at timestamptz,
    p_to text, p_event text, p_reason text, p_next_retry_at timestamptz, p_processor text,
    OUT task_state text, OUT enqueued integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_found text;
BEGIN
    task_state := p_task_state;
    enqueued := 0;
    INSERT INTO tasker.step_results (step_id, task_id, attempt, outcome, result, error, stale,
                                     worker_id, started_at, finished_at)
    VALUES (p_step, p_task, p_attempt, p_outcome, p_result, p_error, p_to IS NULL,
            p_worker, p_started_at, p_finished_at);
    IF p_to IS NOT NULL THEN
        -- One new row version: result fields and state together (the caller
        -- checked the step is enqueued_for_orchestration and holds its lock).
        IF NOT EXISTS (SELECT 1 FROM tasker.legal_step_transitions
                        WHERE from_state = 'enqueued_for_orchestration' AND to_state = p_to) THEN
            RAISE EXCEPTION 'illegal step transition enqueued_for_orchestration -> %', p_to USING ERRCODE = 'TK002';
        END IF;
        UPDATE tasker.steps
           SET state = p_to, updated_at = now(),
               completed_at = CASE WHEN p_to IN ('complete', 'error') THEN now() ELSE completed_at END,
               result = CASE WHEN p_to = 'complete' THEN p_result ELSE result END,
               last_error = CASE WHEN p_to = 'complete' THEN NULL ELSE p_error END,
               next_retry_at = p_next_retry_at
         WHERE id = p_step AND state = 'enqueued_for_orchestration';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'step % state changed underneath: expected enqueued_for_orchestration', p_step
                USING ERRCODE = 'TK001';
        END IF;
        INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, reason, attempt, processor_id)
        VALUES (p_step, p_task, 'enqueued_for_orchestration', p_to, p_event, p_reason, p_attempt, p_processor);
        IF p_to = 'complete' THEN
            enqueued := tasker.enqueue_steps(p_step_queue, tasker.release_children(p_step),
                                             'pending', 'dependencies_met', p_processor);
        END IF;
        task_state := tasker.evaluate_task(p_task, p_task_state, p_processor);
    END IF;
    DELETE FROM pgmq.q_orchestration_results WHERE msg_id = p_msg_id;
END;
$$;

-- A worker's read of its queue and the claim of the steps read, in one call.
-- Lease bookkeeping commits asynchronously (a crash can only lose the lease,
-- which makes the message visible again: at-least-once). Each statement in a
-- function takes a fresh snapshot, so a step whose task committed just before
-- its message was read is seen.
CREATE FUNCTION tasker.claim_steps(p_queue text, p_lease_seconds integer, p_qty integer, p_processor text)
RETURNS TABLE (msg_id bigint, read_ct integer, step_id uuid, task_id uuid, name text, handler_name text,
               handler_config jsonb, attempts integer, max_attempts integer, timeout_seconds integer,
               context jsonb, namespace text, template_name text, parent_results jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
    v_cts integer[];
    v_steps uuid[];
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT array_agg(r.msg_id), array_agg(r.read_ct),
           array_agg(CASE WHEN r.message->>'step_id' ~ '^[0-9a-f-]{36}$'
                          THEN (r.message->>'step_id')::uuid END)
      INTO v_ids, v_cts, v_steps
      FROM tasker.queue_read(p_queue, p_lease_seconds, p_qty) r;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH msgs AS (
        SELECT * FROM unnest(v_ids, v_cts, v_steps) AS m(msg_id, read_ct, step_id)),
    target AS (
        SELECT s.id, s.state AS old_state
          FROM tasker.steps s JOIN msgs m ON m.step_id = s.id
         WHERE s.state IN ('enqueued', 'in_progress')
           FOR UPDATE OF s),
    claimed AS (
        UPDATE tasker.steps s
           SET state = 'in_progress', attempts = s.attempts + 1, updated_at = now(),
               started_at = coalesce(s.started_at, now())
          FROM target WHERE s.id = target.id
     RETURNING s.id, s.task_id, s.name, s.handler_name, s.handler_config, s.attempts,
               s.max_attempts, s.timeout_seconds, target.old_state),
    audit AS (
        INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt, processor_id)
        SELECT c.id, c.task_id, c.old_state, 'in_progress',
               CASE WHEN c.old_state = 'in_progress' THEN 'lease_expired_reclaim' ELSE 'claim' END,
               c.attempts, p_processor
          FROM claimed c)
    SELECT m.msg_id, m.read_ct, c.id, c.task_id, c.name, c.handler_name, c.handler_config,
           c.attempts, c.max_attempts, c.timeout_seconds, t.context, t.namespace, tp.name,
           (SELECT coalesce(jsonb_object_agg(p.name, p.result), '{}'::jsonb)
              FROM tasker.step_edges e JOIN tasker.steps p ON p.id = e.parent_id
             WHERE e.child_id = c.id)
      FROM msgs m
      LEFT JOIN claimed c ON c.id = m.step_id
      LEFT JOIN tasker.tasks t ON t.id = c.task_id
      LEFT JOIN tasker.templates tp ON tp.id = t.template_id;
END;
$$;

-- The orchestrator's read of the results queue; like the claim, only a lease:
-- it commits asynchronously. PGMQ's read, static.
CREATE FUNCTION tasker.read_results(p_lease_seconds integer, p_qty integer)
RETURNS TABLE (msg_id bigint, read_ct integer, message jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    WITH cte AS (
        SELECT q.msg_id FROM pgmq.q_orchestration_results q
         WHERE q.vt <= clock_timestamp()
         ORDER BY q.msg_id
         LIMIT p_qty
           FOR UPDATE SKIP LOCKED)
    UPDATE pgmq.q_orchestration_results m
       SET last_read_at = clock_timestamp(),
           vt = clock_timestamp() + make_interval(secs => p_lease_seconds),
           read_ct = m.read_ct + 1
      FROM cte
     WHERE m.msg_id = cte.msg_id
    RETURNING m.msg_id, m.read_ct, m.message;
END;
$$;

-- PGMQ's read of a step queue with one level of dynamic SQL.
CREATE FUNCTION tasker.queue_read(p_queue text, p_lease_seconds integer, p_qty integer)
RETURNS TABLE (msg_id bigint, read_ct integer, message jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'WITH cte AS (SELECT msg_id FROM pgmq.%1$I WHERE vt <= clock_timestamp()
                       ORDER BY msg_id LIMIT $1 FOR UPDATE SKIP LOCKED)
         UPDATE pgmq.%1$I m
            SET last_read_at = clock_timestamp(),
                vt = clock_timestamp() + make_interval(secs => $2),
                read_ct = m.read_ct + 1
           FROM cte WHERE m.msg_id = cte.msg_id
         RETURNING m.msg_id, m.read_ct, m.message', 'q_' || p_queue)
    USING p_qty, p_lease_seconds;
END;
$$;
