-- When the wake-up sweep (tasker_store::wait) should first look at a wait step
-- that begins to wait at p_from: at once when a signal it waits for
-- (p_signal) is already buffered for its task, else at the end of its sleep or
-- time-out, p_from + p_seconds. (tasker.enqueue_steps,
-- tasker.take_step_results; create_task.sql computes its roots' own: no
-- signal can arrive before the task exists.)
CREATE OR REPLACE FUNCTION tasker.wait_due_at(p_task uuid, p_signal text, p_seconds integer,
                                              p_from timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_signal IS NOT NULL
                     AND EXISTS (SELECT 1 FROM tasker.signals g
                                  WHERE g.task_id = p_task AND g.name = p_signal
                                    AND g.consumed_by IS NULL)
                THEN p_from
                ELSE p_from + make_interval(secs => p_seconds) END
$$;
