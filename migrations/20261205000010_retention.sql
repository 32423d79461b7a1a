-- Retention (docs/retention.md): finished tasks older than their namespace's
-- age are deleted in small batches, oldest first, by
-- tasker_store::retention. Its lookup reads, per namespace, the finished
-- tasks in completed_at order; only finished tasks are in the index, so it
-- costs nothing to tasks that are running (their updates never match the
-- predicate, which names `state`, already named by tasks_active_updated_at).
CREATE INDEX tasks_finished ON tasker.tasks (namespace, completed_at)
    WHERE state IN ('complete', 'error', 'cancelled', 'resolved_manually');

-- A removed task takes the fire rows of the schedule ticks that created it.
CREATE INDEX schedule_fires_task ON tasker.schedule_fires (task_id)
    WHERE task_id IS NOT NULL;
