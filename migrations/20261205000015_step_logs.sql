-- Handler logs per attempt (issue 21, docs/observability.md "Handler logs"):
-- the lines a step's handler logged during one attempt (a Rust handler's
-- `ctx.log`, the WIT `log` import and a guest's stdout/stderr, Python
-- `logging`, a Ruby `Logger`, a C log call), written by the worker with the
-- attempt's outcome and shown by `tasker step logs`, the API and the dashboard.
--
-- One row per (step, attempt), written once (ON CONFLICT DO NOTHING: a report
-- retried after a lost connection writes nothing twice). lines is a JSON
-- array of {at, level, message}, capped by the worker
-- (tasker_model::step::log: 1,000 lines, 64 KiB of text, 4 KiB a line);
-- dropped counts the lines the caps left out.
--
-- Like the other audit tables (step_transitions, step_results) it has no
-- foreign key: an FK check would lock the step row the same report is about
-- to update. A deleted step takes its rows with it through the statement
-- trigger of functions/delete_step_history.sql (retention deletes tasks, whose
-- steps go by ON DELETE CASCADE and fire it).
CREATE TABLE tasker.step_logs (
    step_id uuid NOT NULL,
    task_id uuid NOT NULL,
    attempt integer NOT NULL,
    worker_id text NOT NULL,
    lines jsonb NOT NULL,
    dropped bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (step_id, attempt),
    CONSTRAINT step_logs_lines_array CHECK (jsonb_typeof(lines) = 'array'),
    CONSTRAINT step_logs_dropped CHECK (dropped >= 0)
);
CREATE INDEX step_logs_task ON tasker.step_logs (task_id);
