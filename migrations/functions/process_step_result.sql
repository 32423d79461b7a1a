-- Locks the task and the step (task first, as everywhere), decides whether the
-- result is current — the step waits for exactly this attempt and the task is
-- not finished — and applies the caller's decision through apply_step_result,
-- or records the result as stale (p_to ignored). step_found = false: no such step in
-- that task (nothing written, the caller dead-letters the message).
CREATE OR REPLACE FUNCTION tasker.process_step_result(
    p_msg_id bigint, p_task uuid, p_step uuid, p_attempt integer,
    p_outcome text, p_result jsonb, p_error jsonb,
    p_worker text, p_started_at timestamptz, p_finished_at timestamptz,
    p_to text, p_event text, p_reason text, p_next_retry_at timestamptz, p_processor text,
    OUT step_found boolean, OUT is_current boolean, OUT queues text[], OUT step_state text,
    OUT step_attempts integer, OUT task_before text, OUT task_state text, OUT enqueued integer)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT t.state, s.state, s.attempts
      INTO task_before, step_state, step_attempts
      FROM tasker.tasks t JOIN tasker.steps s ON s.task_id = t.id
     WHERE t.id = p_task AND s.id = p_step
       FOR UPDATE OF t, s;
    step_found := FOUND;
    IF NOT step_found THEN
        RETURN;
    END IF;
    is_current := step_state = 'enqueued_for_orchestration'
                  AND step_attempts = p_attempt
                  AND task_before NOT IN ('complete', 'error', 'cancelled', 'resolved_manually');
    SELECT r.task_state, cardinality(r.enqueued),
           ARRAY(SELECT DISTINCT q FROM unnest(r.enqueued) AS q ORDER BY q)
      INTO task_state, enqueued, queues
      FROM tasker.apply_step_result(
               p_msg_id, p_task, p_step, task_before, p_attempt,
               p_outcome, p_result, p_error, p_worker, p_started_at, p_finished_at,
               CASE WHEN is_current THEN p_to END, p_event, p_reason,
               CASE WHEN is_current THEN p_next_retry_at END, p_processor) r;
END;
$$;
