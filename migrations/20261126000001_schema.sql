-- tasker schema: one table per concept. PGMQ itself is installed before this
-- migration by `tasker migrate` (the pgmq crate's embedded SQL).
--
-- States are text with CHECK constraints; the legal transitions between them live
-- in engine/src/state.rs (the one place they are defined) and every change is a
-- compare-and-set on `state` plus a row in the matching *_transitions table.

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

-- Every result a worker reported, current or stale: the attempt history.
CREATE TABLE tasker.step_results (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_id      uuid NOT NULL REFERENCES tasker.steps (id) ON DELETE CASCADE,
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

-- Audit trails. Never read on a hot path.
CREATE TABLE tasker.task_transitions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id       uuid NOT NULL REFERENCES tasker.tasks (id) ON DELETE CASCADE,
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
    step_id       uuid NOT NULL REFERENCES tasker.steps (id) ON DELETE CASCADE,
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
