-- Delayed starts: a task created with `run_at` (or `delay_seconds`) records
-- when its steps may first be claimed. Its root steps' messages are sent with
-- that visibility time, so no worker sees them earlier. NULL: at once.
ALTER TABLE tasker.tasks ADD COLUMN run_at timestamptz;
