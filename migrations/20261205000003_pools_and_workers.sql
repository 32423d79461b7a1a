-- Pools and the worker registry.
--
-- A pool is a step queue, `steps_<pool>`, served by the workers that subscribe
-- to it. A step runs in its template's pool for it (the step's `pool`, else
-- the template's, else the namespace: today's templates keep the namespace's
-- queue). Every message of a step goes to its own pool's queue, so the step
-- row says which.
ALTER TABLE tasker.steps ADD COLUMN pool text;
UPDATE tasker.steps s SET pool = t.namespace FROM tasker.tasks t WHERE t.id = s.task_id;
ALTER TABLE tasker.steps ALTER COLUMN pool SET NOT NULL,
    ADD CONSTRAINT steps_pool_name CHECK (pool ~ '^[a-z][a-z0-9_]{0,39}$');

-- Every pool a registered template uses, with its queue (a namespace's own
-- pool included). The name becomes part of a SQL identifier, so it is
-- validated here as well as in the application.
CREATE TABLE tasker.pools (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    queue_name  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tasker.pools (name, queue_name, created_at)
SELECT name, queue_name, created_at FROM tasker.namespaces ON CONFLICT DO NOTHING;

-- Worker hosts: one row per running process (the `tasker` binary, libtasker
-- from C, the Python and Ruby workers), written at start, refreshed by its
-- heartbeat, stamped `stopped_at` at a clean stop. A worker whose heartbeat is
-- older than three intervals is gone. Rows of stopped and gone workers are
-- deleted after a day by the vacuum.
CREATE TABLE tasker.workers (
    id                 text PRIMARY KEY,
    host               text NOT NULL,
    pid                integer NOT NULL,
    runtime            text NOT NULL,          -- rust | c | python | ruby
    runtime_version    text NOT NULL,
    tasker_version     text NOT NULL,
    namespaces         text[] NOT NULL,
    pools              text[] NOT NULL,         -- the queues it reads (namespaces included)
    handlers           text[] NOT NULL,         -- handler names registered in it
    runs_components    boolean NOT NULL,        -- also runs uploaded WASM components
    concurrency        integer NOT NULL,
    in_flight          integer NOT NULL DEFAULT 0,
    steps_succeeded    bigint NOT NULL DEFAULT 0,
    steps_failed       bigint NOT NULL DEFAULT 0,
    heartbeat_seconds  integer NOT NULL CHECK (heartbeat_seconds >= 1),
    started_at         timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at         timestamptz
) WITH (fillfactor = 50);      -- heartbeats rewrite the row: keep updates HOT
-- "Who serves pool P" scans the live rows' pools.
CREATE INDEX workers_pools ON tasker.workers USING gin (pools);

-- Step results name the queues their processing sent messages to (a pool per
-- step now), not the task's namespace; the functions returning this type are
-- dropped and come back from migrations/functions/.
DROP FUNCTION IF EXISTS tasker.take_step_results(integer, integer, text);
DROP FUNCTION IF EXISTS tasker.process_step_results(bigint[], uuid[], uuid[], integer[], text[],
    jsonb[], jsonb[], text[], timestamptz[], timestamptz[], text[], text[], text[], timestamptz[], text);
DROP FUNCTION IF EXISTS tasker.process_step_result(bigint, uuid, uuid, integer, text, jsonb, jsonb,
    text, timestamptz, timestamptz, text, text, text, timestamptz, text);
DROP FUNCTION IF EXISTS tasker.apply_step_result(bigint, uuid, uuid, text, text, integer, text,
    jsonb, jsonb, text, timestamptz, timestamptz, text, text, text, timestamptz, text);
DROP FUNCTION IF EXISTS tasker.enqueue_steps(text, uuid[], text, text, text);
DROP TYPE tasker.applied_result;
CREATE TYPE tasker.applied_result AS (
    msg_id bigint, step_found boolean, is_current boolean, queues text[], step_state text,
    step_attempts integer, task_before text, task_state text, enqueued integer, error text);
