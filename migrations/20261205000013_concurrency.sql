-- Concurrency limits by key (issue 19, docs/flow-control.md "Concurrency
-- limits"): `concurrency: { key: input.customer_id, limit: N, strategy: ... }`
-- on a template (every task) or on a step. Never more than `limit` members of
-- one group run at once, across every process; the rest wait, holding
-- nothing but their row.
--
-- A group is a text written when the task is created (tasker_store::
-- concurrency): `<namespace>/<template>:<key value>` for a template's limit,
-- `<namespace>/<template>/<step>:<key value>` for a step's.
--
-- steps.concurrency_group, concurrency_limit: set for a step under a step
--   limit. It occupies a slot while enqueued, in_progress or
--   enqueued_for_orchestration; a ready one that finds its group full stays
--   `pending` with pending_parents = 0 ("held", no message, no attempt
--   spent) until tasker.admit_held moves it on.
-- tasks.concurrency_group, concurrency_limit, concurrency_strategy: set for a
--   task of a template with a limit. concurrency_admitted: false while the
--   task waits for a slot (its ready steps are held); it occupies one from
--   admission until it reaches a terminal state (tasker.admit_tasks).
ALTER TABLE tasker.steps
    ADD COLUMN concurrency_group text,
    ADD COLUMN concurrency_limit integer;
ALTER TABLE tasker.tasks
    ADD COLUMN concurrency_group text,
    ADD COLUMN concurrency_limit integer,
    ADD COLUMN concurrency_strategy text,
    ADD COLUMN concurrency_admitted boolean NOT NULL DEFAULT true;
-- NOT VALID: existing rows have none of these set; new rows are checked.
ALTER TABLE tasker.steps
    ADD CONSTRAINT steps_concurrency CHECK (
        (concurrency_group IS NULL) = (concurrency_limit IS NULL)
        AND (concurrency_limit IS NULL OR concurrency_limit BETWEEN 1 AND 10000)) NOT VALID;
ALTER TABLE tasker.tasks
    ADD CONSTRAINT tasks_concurrency CHECK (
        (concurrency_group IS NULL) = (concurrency_limit IS NULL)
        AND (concurrency_group IS NULL) = (concurrency_strategy IS NULL)
        AND (concurrency_limit IS NULL OR concurrency_limit BETWEEN 1 AND 10000)
        AND (concurrency_strategy IS NULL
             OR concurrency_strategy IN ('queue', 'cancel_newest', 'cancel_in_progress'))
        AND (concurrency_admitted OR concurrency_group IS NOT NULL)) NOT VALID;

-- A group's members: admission counts the occupying ones and finds the held
-- ones; the sweep lists the groups with held steps. The predicate names only
-- concurrency_group, not state, so step state changes stay HOT updates (the
-- count filters state on the heap: its cost grows with the group's steps
-- kept, which retention bounds).
CREATE INDEX steps_concurrency_group ON tasker.steps (concurrency_group)
    WHERE concurrency_group IS NOT NULL;
-- A group's unfinished tasks (task state changes are not HOT anyway:
-- tasks_active_updated_at names state).
CREATE INDEX tasks_concurrency_group ON tasker.tasks (concurrency_group, id)
    WHERE concurrency_group IS NOT NULL
      AND state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually');
