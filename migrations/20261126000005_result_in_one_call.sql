-- Fewer round trips per step. A step result in one round trip: the orchestrator calls
-- tasker.process_step_result as a single autocommitted statement instead of
-- BEGIN; lock; apply_step_result; COMMIT (four round trips). The decision
-- (complete / waiting_for_retry at a time / error) is still made in Rust: it
-- depends only on the message and the step's retry policy, which never
-- changes after the task is created, so it can be made before the lock; what
-- depends on the step's current state (is this attempt still the current one?)
-- is checked here, under the locks.

-- Locks the task and the step (task first, as everywhere), decides whether the
-- result is current — the step waits for exactly this attempt and the task is
-- not finished — and applies the caller's decision through apply_step_result,
-- or records the result as stale (p_to ignored). step_found = false: no such step in
-- that task (nothing written, the caller dead-letters the message).
CREATE FUNCTION tasker.process_step_result(
    p_msg_id bigint, p_task uuid, p_step uuid, p_attempt integer,
    p_outcome text, p_result jsonb, p_error jsonb,
    p_worker text, p_started_at timestamptz, p_finished_at timestamptz,
    p_to text, p_event text, p_reason text, p_next_retry_at timestamptz, p_processor text,
    OUT step_found boolean, OUT is_current boolean, OUT namespace text, OUT step_state text,
    OUT step_attempts integer, OUT task_before text, OUT task_state text, OUT enqueued integer)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT t.state, t.namespace, s.state, s.attempts
      INTO task_before, namespace, step_state, step_attempts
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
    SELECT r.task_state, r.enqueued INTO task_state, enqueued
      FROM tasker.apply_step_result(
               p_msg_id, p_task, p_step, 'steps_' || namespace, task_before, p_attempt,
               p_outcome, p_result, p_error, p_worker, p_started_at, p_finished_at,
               CASE WHEN is_current THEN p_to END, p_event, p_reason,
               CASE WHEN is_current THEN p_next_retry_at END, p_processor) r;
END;
$$;

-- The claim is now one statement built per queue in Rust (store::step::claim_batch):
-- static SQL on the queue's table instead of a function that planned a dynamic
-- read on every call.
DROP FUNCTION tasker.claim_steps(text, integer, integer, text);
DROP FUNCTION tasker.queue_read(text, integer, integer);

-- A batch of results in one call and one commit: process_step_result for each,
-- in the order given (the caller sorts by task then step, so two orchestrators
-- take task locks in the same order), each in its own subtransaction, so a
-- result that fails (a concurrent change, say) is rolled back alone and
-- reported in `error` while the others commit. Each result's state, audit rows
-- and messages still commit together; a batch shares one commit instead of
-- paying one durable commit (and four round trips) per result.
CREATE FUNCTION tasker.process_step_results(
    p_msg_ids bigint[], p_tasks uuid[], p_steps uuid[], p_attempts integer[],
    p_outcomes text[], p_results jsonb[], p_errors jsonb[],
    p_workers text[], p_started_at timestamptz[], p_finished_at timestamptz[],
    p_to text[], p_events text[], p_reasons text[], p_next_retry_at timestamptz[],
    p_processor text)
RETURNS TABLE (msg_id bigint, step_found boolean, is_current boolean, namespace text,
               step_state text, step_attempts integer, task_before text, task_state text,
               enqueued integer, error text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r record;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_msg_ids), 0) LOOP
        msg_id := p_msg_ids[i];
        error := NULL;
        BEGIN
            SELECT * INTO r FROM tasker.process_step_result(
                p_msg_ids[i], p_tasks[i], p_steps[i], p_attempts[i], p_outcomes[i],
                p_results[i], p_errors[i], p_workers[i], p_started_at[i], p_finished_at[i],
                p_to[i], p_events[i], p_reasons[i], p_next_retry_at[i], p_processor);
            step_found := r.step_found;
            is_current := r.is_current;
            namespace := r.namespace;
            step_state := r.step_state;
            step_attempts := r.step_attempts;
            task_before := r.task_before;
            task_state := r.task_state;
            enqueued := r.enqueued;
        EXCEPTION WHEN OTHERS THEN
            step_found := NULL; is_current := NULL; namespace := NULL; step_state := NULL;
            step_attempts := NULL; task_before := NULL; task_state := NULL; enqueued := NULL;
            error := SQLSTATE || ': ' || SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
