-- Traces (docs/observability.md): each task keeps the W3C `traceparent` of its
-- submission, so every span of its life (the orchestrator's, each attempt's in
-- whichever worker ran it) joins one trace. Step messages carry it in PGMQ's
-- `headers` (tasker.send_step_messages). NULL for tasks made before this.
ALTER TABLE tasker.tasks ADD COLUMN traceparent text;
