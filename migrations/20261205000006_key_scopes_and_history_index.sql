-- API keys may be limited to namespaces and may expire. `namespaces` NULL
-- means every namespace (a key with `admin` is never limited); a key past
-- `expires_at` is refused like a revoked one.
ALTER TABLE tasker.api_keys
    ADD COLUMN namespaces text[],
    ADD COLUMN expires_at timestamptz,
    ADD CONSTRAINT api_keys_namespaces_not_empty
        CHECK (namespaces IS NULL OR cardinality(namespaces) > 0);

-- A task's event stream reads its step transitions after an id: index them
-- by (task_id, id), as task transitions are.
CREATE INDEX step_transitions_task_id ON tasker.step_transitions (task_id, id);
DROP INDEX tasker.step_transitions_task;
