-- Whether a pause (tasker.pauses) covers a task of `p_template` in
-- `p_namespace` (`p_task` may be NULL: a task being created). Callers first
-- test `EXISTS (SELECT 1 FROM tasker.pauses)` so that, with no pause, the hot
-- path pays one probe of an empty table.
CREATE OR REPLACE FUNCTION tasker.paused(p_namespace text, p_template text, p_task uuid)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM tasker.pauses p
         WHERE (p.scope = 'namespace' AND p.target = p_namespace)
            OR (p.scope = 'template' AND p.target = p_namespace || '/' || p_template)
            OR (p.scope = 'task' AND p.target = p_task::text))
$$;
