-- Moves the given steps that are still in p_from to 'enqueued', audits them and
-- sends each one's message to its pool's queue (`steps_<pool>`). Returns the
-- queue of every step it moved (one element per step; empty when none moved).
CREATE OR REPLACE FUNCTION tasker.enqueue_steps(p_steps uuid[], p_from text, p_event text,
                                                p_processor text)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_queues text[];
    v_msgs jsonb[];
BEGIN
    IF p_steps IS NULL OR cardinality(p_steps) = 0 THEN
        RETURN '{}';
    END IF;
    WITH moved AS (
        UPDATE tasker.steps SET state = 'enqueued', next_retry_at = NULL, updated_at = now()
         WHERE id = ANY (p_steps) AND state = p_from
     RETURNING id, task_id, attempts, pool),
    audit AS (
        INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt, processor_id)
        SELECT id, task_id, p_from, 'enqueued', p_event, attempts, p_processor FROM moved)
    SELECT array_agg('steps_' || pool ORDER BY pool, id),
           array_agg(jsonb_build_object('step_id', id, 'task_id', task_id) ORDER BY pool, id)
      INTO v_queues, v_msgs FROM moved;
    IF v_msgs IS NULL THEN
        RETURN '{}';
    END IF;
    PERFORM tasker.send_step_messages(v_queues, v_msgs);
    RETURN v_queues;
END;
$$;
