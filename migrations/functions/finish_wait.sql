-- Ends a waiting step, in the caller's transaction, which holds the task row
-- lock and read p_task_state (tasker_store::wait, tasker_store::signal): the
-- step goes waiting -> enqueued_for_orchestration (p_wake_event: why it
-- woke), then its outcome is applied as a worker's result would be, by
-- tasker.apply_step_result: recorded in step_results (attempt = the wait's,
-- worker = p_processor), the step moved to p_to (complete or error) with
-- p_event and p_reason, ready children enqueued, the task re-decided.
-- p_outcome is 'success' (p_result) or 'permanent_error' (p_error).
-- Returns the task's state and the queue of each step it enqueued; task_state
-- NULL (and nothing written) when the step was not waiting.
CREATE OR REPLACE FUNCTION tasker.finish_wait(
    p_task uuid, p_step uuid, p_task_state text, p_wake_event text,
    p_outcome text, p_result jsonb, p_error jsonb,
    p_to text, p_event text, p_reason text, p_processor text,
    OUT task_state text, OUT enqueued text[])
LANGUAGE plpgsql AS $$
DECLARE
    v_attempt integer;
    v_started timestamptz;
BEGIN
    enqueued := '{}';
    UPDATE tasker.steps
       SET state = 'enqueued_for_orchestration', wake_at = NULL, updated_at = now()
     WHERE id = p_step AND task_id = p_task AND state = 'waiting'
    RETURNING attempts, started_at INTO v_attempt, v_started;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, reason,
                                         attempt, processor_id)
    VALUES (p_step, p_task, 'waiting', 'enqueued_for_orchestration', p_wake_event, p_reason,
            v_attempt, p_processor);
    SELECT r.task_state, r.enqueued INTO task_state, enqueued
      FROM tasker.apply_step_result(
               NULL, p_task, p_step, p_task_state, v_attempt, p_outcome, p_result, p_error,
               p_processor, least(v_started, now()), now(), p_to, p_event, p_reason, NULL,
               p_processor) r;
END;
$$;
