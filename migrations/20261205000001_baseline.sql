-- tasker's schema as of 0.1.0: every table, index, constraint and type. The
-- pre-release history (20261126000001..20261127000007) was squashed into this
-- file; see CHANGELOG.md and migrations/README.md.
--
-- No function bodies here: every function (trigger functions and their
-- triggers included) is in migrations/functions/<name>.sql, applied by
-- `tasker migrate` after the migrations. PGMQ is installed before this
-- migration (the pgmq crate's embedded SQL); nothing here refers to it.
--
-- States are text with CHECK constraints; the legal transitions between them
-- live in engine/model/src/state.rs (the one place they are defined), which
-- `tasker migrate` mirrors into tasker.legal_*_transitions. Every change is a
-- compare-and-set on `state` plus a row in the matching *_transitions table.
--
-- Schema choices (see ARCHITECTURE.md): no FK from tasks to templates or
-- namespaces, none from the audit tables to tasks or steps, none to the legal
-- tables — an FK check locks the referenced row FOR KEY SHARE, and every
-- transaction in the system would contend on the same few rows.

CREATE SCHEMA IF NOT EXISTS tasker;

-- A namespace owns one PGMQ queue for its steps. The name becomes part of a SQL
-- identifier, so it is validated here as well as in the application.
CREATE TABLE tasker.namespaces (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    queue_name  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A registered template version. `definition` is the whole validated template.
CREATE TABLE tasker.templates (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace   text NOT NULL REFERENCES tasker.namespaces (name),
    name        text NOT NULL,
    version     text NOT NULL,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace, name, version)
);

CREATE TABLE tasker.tasks (
    id               uuid PRIMARY KEY,               -- UUIDv7: time ordered
    -- No foreign keys to templates and namespaces on purpose: an FK check locks
    -- the referenced row (FOR KEY SHARE), and every concurrent creation would
    -- contend on the same template row. Template versions are immutable and
    -- never deleted, so these references cannot dangle.
    template_id      bigint NOT NULL,
    namespace        text NOT NULL,
    context          jsonb NOT NULL,                 -- the task's input
    priority         integer NOT NULL DEFAULT 0,
    idempotency_key  text,
    state            text NOT NULL CHECK (state IN (
        'pending', 'initializing', 'enqueuing_steps', 'steps_in_process',
        'evaluating_results', 'waiting_for_dependencies', 'waiting_for_retry',
        'blocked_by_failures', 'complete', 'error', 'cancelled', 'resolved_manually')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    UNIQUE (namespace, idempotency_key)
) WITH (fillfactor = 80);      -- room for HOT updates of state
-- Listing and analytics by time; stale-task sweep over non-terminal tasks only.
CREATE INDEX tasks_created_at ON tasker.tasks (created_at);
CREATE INDEX tasks_active_updated_at ON tasker.tasks (updated_at)
    WHERE state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually');
CREATE INDEX tasks_template ON tasker.tasks (template_id);

CREATE TABLE tasker.steps (
    id                uuid PRIMARY KEY,              -- UUIDv7
    task_id           uuid NOT NULL REFERENCES tasker.tasks (id) ON DELETE CASCADE,
    name              text NOT NULL,
    handler_name      text NOT NULL,
    handler_version   text,
    handler_config    jsonb NOT NULL DEFAULT '{}',
    retry             jsonb NOT NULL,                -- the step's RetryPolicy
    max_attempts      integer NOT NULL CHECK (max_attempts >= 1),
    timeout_seconds   integer NOT NULL CHECK (timeout_seconds >= 1),
    attempts          integer NOT NULL DEFAULT 0,    -- attempts started so far
    pending_parents   integer NOT NULL,              -- parents not yet complete; 0 = ready
    state             text NOT NULL CHECK (state IN (
        'pending', 'enqueued', 'in_progress', 'enqueued_for_orchestration',
        'waiting_for_retry', 'complete', 'error', 'cancelled', 'resolved_manually')),
    result            jsonb,
    last_error        jsonb,
    next_retry_at     timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,                   -- first attempt began
    completed_at      timestamptz,
    UNIQUE (task_id, name)                           -- also serves "steps of a task"
) WITH (fillfactor = 70);      -- a step row changes several times: keep updates HOT
-- Retry sweep: only the steps that wait, ordered by when they are due. The
-- predicate names next_retry_at, not state, so state changes stay HOT updates.
CREATE INDEX steps_due_for_retry ON tasker.steps (next_retry_at)
    WHERE next_retry_at IS NOT NULL;

-- DAG edges: parent must complete before child may run.
CREATE TABLE tasker.step_edges (
    task_id    uuid NOT NULL REFERENCES tasker.tasks (id) ON DELETE CASCADE,
    parent_id  uuid NOT NULL REFERENCES tasker.steps (id) ON DELETE CASCADE,
    child_id   uuid NOT NULL REFERENCES tasker.steps (id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX step_edges_child ON tasker.step_edges (child_id);
CREATE INDEX step_edges_task ON tasker.step_edges (task_id);

-- Audit tables: step_results, task_transitions, step_transitions. They keep
-- their task_id / step_id but have no foreign keys: each insert's referential
-- check would lock the task or step row FOR KEY SHARE — about ten per step on
-- the hot path — and concurrent key-share lockers of one task row share a
-- MultiXact. tasker never deletes tasks; a task or step deleted by hand still
-- takes its history with it: statement triggers steps_history_deleted and
-- tasks_history_deleted, created with their functions in
-- migrations/functions/delete_{step,task}_history.sql.

-- Every result a worker reported, current or stale: the attempt history.
CREATE TABLE tasker.step_results (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_id      uuid NOT NULL,
    task_id      uuid NOT NULL,
    attempt      integer NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('success', 'retryable_error', 'permanent_error')),
    result       jsonb,
    error        jsonb,
    stale        boolean NOT NULL DEFAULT false,   -- attempt was no longer current
    worker_id    text,
    started_at   timestamptz,
    finished_at  timestamptz,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX step_results_step ON tasker.step_results (step_id, id);
CREATE INDEX step_results_recorded_at ON tasker.step_results (recorded_at);

-- Audit trails. Never read on a hot path. A task's history is ordered by
-- created_at: the results take and transition_task stamp theirs with
-- clock_timestamp() (see migrations/functions/transition_task.sql).
CREATE TABLE tasker.task_transitions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id       uuid NOT NULL,
    from_state    text,
    to_state      text NOT NULL,
    event         text NOT NULL,
    reason        text,
    processor_id  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_transitions_task ON tasker.task_transitions (task_id, id);

CREATE TABLE tasker.step_transitions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_id       uuid NOT NULL,
    task_id       uuid NOT NULL,
    from_state    text,
    to_state      text NOT NULL,
    event         text NOT NULL,
    reason        text,
    attempt       integer NOT NULL,
    processor_id  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX step_transitions_step ON tasker.step_transitions (step_id, id);
CREATE INDEX step_transitions_task ON tasker.step_transitions (task_id);

-- The legal transitions, written by `tasker migrate` from
-- engine/model/src/state.rs (it adds rows, never deletes them: removing an edge
-- needs a migration). transition_task / transition_step refuse anything not
-- listed.
CREATE TABLE tasker.legal_task_transitions (
    from_state text NOT NULL,
    to_state   text NOT NULL,
    PRIMARY KEY (from_state, to_state)
);
CREATE TABLE tasker.legal_step_transitions (
    from_state text NOT NULL,
    to_state   text NOT NULL,
    PRIMARY KEY (from_state, to_state)
);

-- API keys of the HTTP admin API. A key reads `tk_<prefix>_<secret>`: the
-- prefix finds the row, sha256(secret) is compared in constant time with
-- `secret_hash`. The plaintext is shown once, at creation, and never stored.
CREATE TABLE tasker.api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    prefix       text NOT NULL UNIQUE,
    secret_hash  bytea NOT NULL,
    permissions  text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- Uploaded WASM handler components (PUT /v1/handlers/{name}/{version}).
-- A (name, version) is immutable: uploading other bytes under it is refused
-- (409); it can be deleted and uploaded again. Workers resolve a step's
-- handler here on every attempt (the exact `handler.version` of the template,
-- else the highest version), so a new upload is used by the next step.
CREATE TABLE tasker.handler_components (
    name              text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.\-]*$' AND length(name) <= 100),
    version           text NOT NULL CHECK (version ~ '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'),
    -- The version as numbers, for "latest" (highest semver) without parsing.
    version_major     bigint NOT NULL,
    version_minor     bigint NOT NULL,
    version_patch     bigint NOT NULL,
    sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes        bigint NOT NULL CHECK (size_bytes > 0),
    contract_version  text NOT NULL,
    uploaded_at       timestamptz NOT NULL DEFAULT now(),
    bytes             bytea NOT NULL,
    PRIMARY KEY (name, version)
);
-- Compiled code does not compress: keep the bytes out of line, uncompressed.
ALTER TABLE tasker.handler_components ALTER COLUMN bytes SET STORAGE EXTERNAL;
CREATE INDEX handler_components_latest
    ON tasker.handler_components (name, version_major DESC, version_minor DESC, version_patch DESC);

-- One applied result: the columns of tasker.process_step_results, the row
-- type tasker.take_step_results collects (a function's argument and return
-- types must exist before it is created, so types live in migrations).
CREATE TYPE tasker.applied_result AS (
    msg_id bigint, step_found boolean, is_current boolean, namespace text, step_state text,
    step_attempts integer, task_before text, task_state text, enqueued integer, error text);
