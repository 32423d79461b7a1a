-- The dead-letter queue of steps: one row per step that ended in `error`
-- (attempts exhausted, a permanent failure, no live worker to run it), kept
-- until an operator retries, resolves or completes the step (it leaves
-- `error`: the trigger of migrations/functions/track_step_dlq.sql deletes the
-- row), discards it, or ends its task. Unreadable queue messages are another
-- list: the PGMQ archive tables (`tasker_store::archive`).
CREATE TABLE tasker.step_dlq (
    step_id    uuid PRIMARY KEY,
    task_id    uuid NOT NULL,
    namespace  text NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX step_dlq_task ON tasker.step_dlq (task_id);
CREATE INDEX step_dlq_namespace ON tasker.step_dlq (namespace, step_id);

INSERT INTO tasker.step_dlq (step_id, task_id, namespace, failed_at)
SELECT s.id, s.task_id, t.namespace, coalesce(s.completed_at, s.updated_at)
  FROM tasker.steps s JOIN tasker.tasks t ON t.id = s.task_id
 WHERE s.state = 'error' AND t.state NOT IN ('complete', 'cancelled', 'resolved_manually');
