-- Moves the given steps that are still in p_from to 'enqueued', audits them and
-- sends their messages to p_queue. Returns how many moved.
CREATE OR REPLACE FUNCTION tasker.enqueue_steps(p_queue text, p_steps uuid[], p_from text, p_event text,
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
