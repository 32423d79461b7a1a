-- Rate limits (issue 19, docs/flow-control.md): named limits that steps
-- reference (`rate_limit: { name: payments, key: input.customer_id }` in a
-- template), enforced by every worker's claim (engine/store/src/sql/
-- claim_steps.sql) across processes. A step over its limit waits: its message
-- is hidden until the limit admits it again; no attempt is spent.

-- A limit: `per_second` steps a second on average, at most `burst` at once.
-- A step that references a name not in this table runs unlimited.
CREATE TABLE tasker.rate_limits (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    per_second  float8 NOT NULL CHECK (per_second > 0 AND per_second <= 1000000),
    burst       integer NOT NULL CHECK (burst BETWEEN 1 AND 1000000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One bucket per limit and key ('' for a limit without a key), by the
-- generic cell rate algorithm: `tat` is the theoretical arrival time, when
-- the bucket would be full again. A claim at `now` may start k more steps
-- while greatest(tat, now) + (k - 1) / per_second <= now + (burst - 1) /
-- per_second, and moves tat by k / per_second. A missing row is a full bucket
-- (as is any row whose tat has passed): rows are made by the first claim
-- that meets a key. `granted` is how many steps the last claim of the bucket
-- started (that claim's RETURNING reads it). No foreign key (see the
-- baseline): deleting a limit deletes its buckets.
CREATE TABLE tasker.rate_buckets (
    name     text NOT NULL,
    key      text NOT NULL DEFAULT '',
    tat      timestamptz NOT NULL,
    granted  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (name, key)
) WITH (fillfactor = 50);      -- every admitting claim rewrites the row: keep updates HOT

-- Which steps of which template version reference a limit, written once
-- when the template is registered (templates are immutable).
-- key_path: the path into the task's input (`input.customer_id` →
-- {customer_id}); NULL: one bucket for the whole limit.
CREATE TABLE tasker.template_step_limits (
    template_id  bigint NOT NULL,
    step_name    text NOT NULL,
    limit_name   text NOT NULL CHECK (limit_name ~ '^[a-z][a-z0-9_]{0,62}$'),
    key_path     text[] CHECK (cardinality(key_path) BETWEEN 1 AND 16),
    PRIMARY KEY (template_id, step_name)
);
CREATE INDEX template_step_limits_limit ON tasker.template_step_limits (limit_name);
