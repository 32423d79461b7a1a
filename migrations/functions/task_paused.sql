-- Whether a pause covers the task `p_task` (tasker.paused, by its namespace,
-- template name and id); false for an unknown or NULL task. With no pause at
-- all it costs one probe of the empty tasker.pauses (the claim's hot path).
CREATE OR REPLACE FUNCTION tasker.task_paused(p_task uuid)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM tasker.pauses)
       AND coalesce((SELECT tasker.paused(t.namespace, tp.name, t.id)
                       FROM tasker.tasks t JOIN tasker.templates tp ON tp.id = t.template_id
                      WHERE t.id = p_task), false)
$$;
