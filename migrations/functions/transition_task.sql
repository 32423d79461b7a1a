-- Compare-and-set of a task's state plus its audit row. Returns NULL when the
-- task moved, otherwise the state found ('' when there is no such task).
--
-- Audit times. A transaction's now() is when it began, and the results take
-- begins before its read sees the results it applies: a report committed in
-- between has a later now() than the take's own audit rows, and the history,
-- ordered by time, would show a step complete before it was reported. The take
-- stamps its audit rows with clock_timestamp(), taken after the read, and so
-- does transition_task (called after the step changes it follows, so a task's
-- transition still comes after the steps' that caused it).
CREATE OR REPLACE FUNCTION tasker.transition_task(p_task uuid, p_from text, p_to text, p_event text,
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
        INSERT INTO tasker.task_transitions (task_id, from_state, to_state, event, reason,
                                             processor_id, created_at)
        VALUES (p_task, p_from, p_to, p_event, p_reason, p_processor, clock_timestamp());
        RETURN NULL;
    END IF;
    SELECT state INTO v_found FROM tasker.tasks WHERE id = p_task;
    RETURN coalesce(v_found, '');
END;
$$;
