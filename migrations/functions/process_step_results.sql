-- A batch of results in one call and one commit: process_step_result for each,
-- in the order given (the caller sorts by task then step, so two orchestrators
-- take task locks in the same order), each in its own subtransaction, so a
-- result that fails (a concurrent change, say) is rolled back alone and
-- reported in `error` while the others commit. Each result's state, audit rows
-- and messages still commit together; a batch shares one commit instead of
-- paying one durable commit (and four round trips) per result.
CREATE OR REPLACE FUNCTION tasker.process_step_results(
    p_msg_ids bigint[], p_tasks uuid[], p_steps uuid[], p_attempts integer[],
    p_outcomes text[], p_results jsonb[], p_errors jsonb[],
    p_workers text[], p_started_at timestamptz[], p_finished_at timestamptz[],
    p_to text[], p_events text[], p_reasons text[], p_next_retry_at timestamptz[],
    p_processor text)
RETURNS TABLE (msg_id bigint, step_found boolean, is_current boolean, queues text[],
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
            queues := r.queues;
            step_state := r.step_state;
            step_attempts := r.step_attempts;
            task_before := r.task_before;
            task_state := r.task_state;
            enqueued := r.enqueued;
        EXCEPTION WHEN OTHERS THEN
            step_found := NULL; is_current := NULL; queues := NULL; step_state := NULL;
            step_attempts := NULL; task_before := NULL; task_state := NULL; enqueued := NULL;
            error := SQLSTATE || ': ' || SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
