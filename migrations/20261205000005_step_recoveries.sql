-- Lost workers are not failed attempts. `attempts` counts every start of a
-- step (the current one is the key a result must match); `recoveries` counts
-- the starts that took over from a worker whose lease expired (killed,
-- stalled, stopped past its grace). The retry budget is `attempts -
-- recoveries`; `worker.max_recoveries` caps the others.
ALTER TABLE tasker.steps ADD COLUMN recoveries integer NOT NULL DEFAULT 0;
