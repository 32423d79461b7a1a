-- Keeps tasker.step_dlq in step with the steps: a step entering `error` gets a
-- row, a step leaving it (an operator's retry, resolve or complete) loses it.
-- Every path that fails a step goes through here, whoever wrote the update.
-- The trigger's WHEN clause is evaluated without calling the function, so the
-- other state changes (the hot path) pay only that comparison.
CREATE OR REPLACE FUNCTION tasker.track_step_dlq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'error' THEN
        INSERT INTO tasker.step_dlq (step_id, task_id, namespace)
        SELECT NEW.id, NEW.task_id, t.namespace FROM tasker.tasks t WHERE t.id = NEW.task_id
        ON CONFLICT (step_id) DO UPDATE SET failed_at = now();
    ELSE
        DELETE FROM tasker.step_dlq WHERE step_id = NEW.id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER steps_dlq AFTER UPDATE OF state ON tasker.steps
    FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM OLD.state
                       AND (NEW.state = 'error' OR OLD.state = 'error'))
    EXECUTE FUNCTION tasker.track_step_dlq();
