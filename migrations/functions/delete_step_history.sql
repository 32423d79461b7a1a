-- A step deleted by hand (or by retention, with its task) takes its history
-- with it: transitions, results and handler logs. The audit tables have no
-- foreign keys (see the baseline migration), so a statement trigger on
-- tasker.steps deletes the rows of the steps gone. tasker itself never deletes
-- steps or tasks.
CREATE OR REPLACE FUNCTION tasker.delete_step_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.step_transitions WHERE step_id IN (SELECT id FROM gone);
    DELETE FROM tasker.step_results WHERE step_id IN (SELECT id FROM gone);
    DELETE FROM tasker.step_logs WHERE step_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;

-- The trigger lives with its function: a trigger can only be created once its
-- function exists, and function files are applied after the migrations.
CREATE OR REPLACE TRIGGER steps_history_deleted AFTER DELETE ON tasker.steps
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.delete_step_history();
