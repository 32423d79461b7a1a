-- Re-decides a task's state from its steps and records the change through the
-- legal path. The caller holds the task row lock and passes the state it read.
-- Returns the new state.
CREATE OR REPLACE FUNCTION tasker.evaluate_task(p_task uuid, p_current text, p_processor text)
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
