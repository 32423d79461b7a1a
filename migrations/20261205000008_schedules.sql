-- Schedules: a template fired on a cron expression in a time zone. Every
-- orchestrator's tick locks the due schedules (FOR UPDATE SKIP LOCKED),
-- inserts one tasker.schedule_fires row per tick (its primary key makes each
-- tick fire once, whatever the number of orchestrators), creates the task in
-- the same transaction and moves next_fire_at on.
CREATE TABLE tasker.schedules (
    id               uuid PRIMARY KEY,               -- UUIDv7
    name             text NOT NULL,
    namespace        text NOT NULL,
    template_name    text NOT NULL,
    template_version text,                           -- NULL: the highest registered
    cron             text NOT NULL,
    timezone         text NOT NULL,                  -- IANA name, e.g. Europe/Paris
    context          jsonb NOT NULL,
    catch_up         text NOT NULL CHECK (catch_up IN ('skip', 'catch_up')),
    paused           boolean NOT NULL DEFAULT false,
    next_fire_at     timestamptz NOT NULL,
    last_fired_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace, name)
);
-- The tick's scan: due, unpaused schedules.
CREATE INDEX schedules_due ON tasker.schedules (next_fire_at) WHERE NOT paused;

-- One row per fired tick. No foreign keys (see the baseline's schema choices):
-- deleting a schedule deletes its fires in the same statement's transaction.
CREATE TABLE tasker.schedule_fires (
    schedule_id uuid NOT NULL,
    fire_at     timestamptz NOT NULL,
    task_id     uuid,
    fired_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, fire_at)
);

-- The schedule a task was fired by; NULL for a task created otherwise.
ALTER TABLE tasker.tasks ADD COLUMN schedule_id uuid;
CREATE INDEX tasks_schedule ON tasker.tasks (schedule_id) WHERE schedule_id IS NOT NULL;
