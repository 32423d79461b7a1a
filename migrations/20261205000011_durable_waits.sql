-- Durable waits (issue 19, docs/waits.md): steps that run no handler but wait
-- for a named signal (`wait_for`) or for a length of time (`sleep`). A ready
-- wait step is `waiting`, with no queue message: it holds no worker slot and
-- no connection, and survives restarts as this row. The orchestrators' sweep
-- (tasker_store::wait) wakes it at `wake_at`; a signal
-- (tasker_store::signal) completes it at once.
--
-- wait_seconds: set for a wait step only: the sleep's length, or the signal's
--   time-out, counted from `started_at` (when it began waiting).
-- wait_signal: the signal's name, for a signal wait; NULL for a sleep.
-- wake_at: while the step waits, when the sweep looks at it next (its end, or
--   at once when a buffered signal is there to take); NULL otherwise.
--
-- The constraints are NOT VALID: existing rows have none of these columns
-- set (nothing to check, and no scan under the table lock); new rows are
-- checked.
ALTER TABLE tasker.steps
    ADD COLUMN wait_seconds integer,
    ADD COLUMN wait_signal text,
    ADD COLUMN wake_at timestamptz;
ALTER TABLE tasker.steps
    ADD CONSTRAINT steps_wait_seconds CHECK (wait_seconds >= 1) NOT VALID,
    ADD CONSTRAINT steps_wait_signal CHECK (
        wait_signal IS NULL OR (wait_seconds IS NOT NULL AND wait_signal ~ '^[a-z][a-z0-9_]{0,62}$')) NOT VALID;

-- The new step state. Every state the old CHECK allowed is still allowed.
ALTER TABLE tasker.steps DROP CONSTRAINT steps_state_check;
ALTER TABLE tasker.steps ADD CONSTRAINT steps_state_check CHECK (state IN (
    'pending', 'enqueued', 'in_progress', 'enqueued_for_orchestration',
    'waiting_for_retry', 'complete', 'error', 'cancelled', 'resolved_manually',
    'waiting')) NOT VALID;

-- The wake-up sweep: only the steps that wait, by when they are due. The
-- predicate names wake_at, not state, so state changes stay HOT updates.
CREATE INDEX steps_wake_at ON tasker.steps (wake_at) WHERE wake_at IS NOT NULL;

-- Signals sent to a task (`POST /v1/tasks/{id}/signals/{name}`). One that
-- arrives before its step waits is kept (buffered) and taken when the step
-- begins to wait; `consumed_by` is the step that took it.
CREATE TABLE tasker.signals (
    id           uuid PRIMARY KEY,                 -- UUIDv7: arrival order
    task_id      uuid NOT NULL REFERENCES tasker.tasks (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    payload      jsonb NOT NULL,
    sent_by      text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    consumed_by  uuid,                             -- a step of the task; NULL: buffered
    consumed_at  timestamptz
);
CREATE INDEX signals_task ON tasker.signals (task_id, name, id);
-- At most one buffered signal per task and name: a second is refused until
-- the first is taken.
CREATE UNIQUE INDEX signals_buffered ON tasker.signals (task_id, name) WHERE consumed_by IS NULL;
