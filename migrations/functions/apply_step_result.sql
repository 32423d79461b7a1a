-- Applies the orchestrator's decision about one result, in the caller's
-- transaction (which holds the task and step row locks): records the attempt,
-- moves the step to p_to (NULL: the result is stale and changes nothing),
-- enqueues the children that became ready, re-decides the task and deletes the
-- result message. Returns the task's state and the queue of each step it
-- enqueued (tasker.enqueue_steps). A step under a concurrency limit that
-- leaves its slot lets the group's held steps in (tasker.admit_held); a task
-- of a template limit that finishes lets its group's waiting tasks in
-- (tasker.admit_tasks): their queues are returned too.
CREATE OR REPLACE FUNCTION tasker.apply_step_result(
    p_msg_id bigint, p_task uuid, p_step uuid, p_task_state text,
    p_attempt integer, p_outcome text, p_result jsonb, p_error jsonb,
    p_worker text, p_started_at timestamptz, p_finished_at timestamptz,
    p_to text, p_event text, p_reason text, p_next_retry_at timestamptz, p_processor text,
    OUT task_state text, OUT enqueued text[])
LANGUAGE plpgsql AS $$
DECLARE
    v_found text;
    v_group text;
BEGIN
    task_state := p_task_state;
    enqueued := '{}';
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
         WHERE id = p_step AND state = 'enqueued_for_orchestration'
        RETURNING concurrency_group INTO v_group;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'step % state changed underneath: expected enqueued_for_orchestration', p_step
                USING ERRCODE = 'TK001';
        END IF;
        INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, reason, attempt, processor_id)
        VALUES (p_step, p_task, 'enqueued_for_orchestration', p_to, p_event, p_reason, p_attempt, p_processor);
        IF p_to = 'complete' THEN
            enqueued := tasker.enqueue_steps(tasker.release_children(p_step),
                                             'pending', 'dependencies_met', p_processor);
        END IF;
        IF v_group IS NOT NULL THEN
            enqueued := enqueued || tasker.admit_held(ARRAY[v_group], p_processor);
        END IF;
        task_state := tasker.evaluate_task(p_task, p_task_state, p_processor);
        IF task_state IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN
            SELECT t.concurrency_group INTO v_group FROM tasker.tasks t WHERE t.id = p_task;
            IF v_group IS NOT NULL THEN
                enqueued := enqueued || tasker.admit_tasks(ARRAY[v_group], p_processor);
            END IF;
        END IF;
    END IF;
    DELETE FROM pgmq.q_orchestration_results WHERE msg_id = p_msg_id;
END;
$$;
