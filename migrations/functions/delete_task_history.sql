-- A task deleted by hand takes its history with it: its transitions here (its
-- steps go by ON DELETE CASCADE, and their history by
-- tasker.delete_step_history). tasker itself never deletes tasks.
CREATE OR REPLACE FUNCTION tasker.delete_task_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.task_transitions WHERE task_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;

-- The trigger lives with its function: a trigger can only be created once its
-- function exists, and function files are applied after the migrations.
CREATE OR REPLACE TRIGGER tasks_history_deleted AFTER DELETE ON tasker.tasks
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.delete_task_history();
