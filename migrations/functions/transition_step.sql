-- Compare-and-set of a step's state plus its audit row, which carries the
-- step's current attempt. Returns NULL when the step moved, otherwise the state
-- found ('' when there is no such step).
CREATE OR REPLACE FUNCTION tasker.transition_step(p_step uuid, p_from text, p_to text, p_event text,
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
