-- The task state its steps call for. A waiting step (a signal, a sleep) keeps
-- its task in process, as a running one does.
CREATE OR REPLACE FUNCTION tasker.decide_task_state(p_task uuid)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_state text;
BEGIN
    SELECT CASE
        WHEN count(*) FILTER (WHERE state NOT IN ('complete', 'resolved_manually')) = 0 THEN 'complete'
        WHEN count(*) FILTER (WHERE state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration',
                                              'waiting')) > 0
            THEN 'steps_in_process'
        WHEN count(*) FILTER (WHERE state = 'waiting_for_retry') > 0 THEN 'waiting_for_retry'
        WHEN count(*) FILTER (WHERE state IN ('error', 'cancelled')) > 0 THEN 'blocked_by_failures'
        ELSE 'waiting_for_dependencies'
    END INTO v_state
    FROM tasker.steps WHERE task_id = p_task;
    RETURN v_state;
END;
$$;
