-- One batch of finished tasks, tasks :from .. :to - 1 of :total, as
-- `tasker bench` leaves them: namespace `bench`, even tasks linear4
-- (a -> b -> c -> d), odd tasks diamond (start -> left, right -> join), every
-- step run once and complete, with the audit rows the engine writes
-- (engine/store/src/sql/create_task.sql, migrations/functions/): 6 task
-- transitions, 5 step transitions per step, one step result per step.
-- Task i was created at now() - 30 days + i * (30 days / :total), so the
-- creation times (and the UUIDv7 ids made from them) rise with i and the
-- batches append to the indexes as a live system would. Each task took
-- 40 ms; step k of it ran at created_at + 10 ms * k.
-- psql variables: from, to, total, linear_tpl, diamond_tpl (template ids).
\set ON_ERROR_STOP on
BEGIN;

-- A UUIDv7 for a timestamp: its unix milliseconds, then random bits.
CREATE FUNCTION pg_temp.uuid7(ts timestamptz) RETURNS uuid LANGUAGE sql AS $$
    SELECT (lpad(to_hex(ms >> 16), 8, '0') || '-' || lpad(to_hex(ms & 65535), 4, '0')
            || '-7' || substr(r, 16, 3) || substr(r, 19))::uuid
      FROM (SELECT (extract(epoch FROM ts) * 1000)::bigint AS ms,
                   gen_random_uuid()::text AS r) x
$$;

-- The batch's tasks: id, times, shape.
CREATE TEMP TABLE fill_tasks ON COMMIT DROP AS
SELECT pg_temp.uuid7(created_at) AS id, i, created_at, i % 2 = 1 AS diamond
  FROM (SELECT i, now() - interval '30 days' + i * (interval '30 days' / :total) AS created_at
          FROM generate_series(:from, :to - 1) AS i) x;

-- Their steps: k = 0..3 in run order, with each step's parents' count.
CREATE TEMP TABLE fill_steps ON COMMIT DROP AS
SELECT pg_temp.uuid7(t.created_at) AS id, t.id AS task_id, k,
       CASE WHEN t.diamond THEN (ARRAY['start', 'left', 'right', 'join'])[k + 1]
            ELSE (ARRAY['a', 'b', 'c', 'd'])[k + 1] END AS name,
       CASE WHEN k = 0 THEN 0 WHEN t.diamond AND k = 3 THEN 2 ELSE 1 END AS parents,
       t.created_at + k * interval '10 ms' AS started_at,
       t.created_at + (k + 1) * interval '10 ms' AS completed_at,
       t.diamond
  FROM fill_tasks t, generate_series(0, 3) AS k;

INSERT INTO tasker.tasks (id, template_id, namespace, context, priority, state,
                          created_at, updated_at, completed_at)
SELECT id, CASE WHEN diamond THEN :diamond_tpl ELSE :linear_tpl END, 'bench',
       jsonb_build_object('order', i), 0, 'complete',
       created_at, created_at + interval '40 ms', created_at + interval '40 ms'
  FROM fill_tasks;

INSERT INTO tasker.steps (id, task_id, name, handler_name, handler_config, retry, max_attempts,
                          timeout_seconds, attempts, pending_parents, state, pool, result,
                          created_at, updated_at, started_at, completed_at)
SELECT s.id, s.task_id, s.name, 'bench.noop', '{}',
       '{"jitter": false, "max_ms": 30000, "backoff": "exponential", "base_ms": 100, "max_attempts": 3}',
       3, 30, 1, 0, 'complete', 'bench', '{}',
       s.started_at - s.k * interval '10 ms', s.completed_at, s.started_at, s.completed_at
  FROM fill_steps s;

-- Edges: linear k-1 -> k; diamond 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3.
INSERT INTO tasker.step_edges (task_id, parent_id, child_id)
SELECT c.task_id, p.id, c.id
  FROM fill_steps c JOIN fill_steps p ON p.task_id = c.task_id
 WHERE (NOT c.diamond AND p.k = c.k - 1)
    OR (c.diamond AND ((c.k IN (1, 2) AND p.k = 0) OR (c.k = 3 AND p.k IN (1, 2))));

-- The creation path and the completion, as the engine records them.
INSERT INTO tasker.task_transitions (task_id, from_state, to_state, event, processor_id, created_at)
SELECT t.id, x.f, x.t, x.e, 'orchestrator-fill', t.created_at + x.n * interval '40 ms' / 5
  FROM fill_tasks t,
       unnest(ARRAY[NULL, 'pending', 'initializing', 'enqueuing_steps', 'steps_in_process', 'evaluating_results'],
              ARRAY['pending', 'initializing', 'enqueuing_steps', 'steps_in_process', 'evaluating_results', 'complete'],
              ARRAY['create', 'initialize', 'enqueue_steps', 'steps_enqueued', 'evaluate', 'all_steps_complete'],
              ARRAY[0, 0, 0, 0, 5, 5])
         AS x(f, t, e, n);

-- Each step: created pending, enqueued, claimed, reported, complete.
INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt,
                                     processor_id, created_at)
SELECT s.id, s.task_id, x.f, x.t, x.e, x.a, x.p, s.started_at + x.n * interval '2 ms'
  FROM fill_steps s,
       unnest(ARRAY[NULL, 'pending', 'enqueued', 'in_progress', 'enqueued_for_orchestration'],
              ARRAY['pending', 'enqueued', 'in_progress', 'enqueued_for_orchestration', 'complete'],
              ARRAY['create', 'dependencies_met', 'claim', 'reported', 'succeeded'],
              ARRAY[0, 0, 1, 1, 1],
              ARRAY['orchestrator-fill', 'orchestrator-fill', 'worker-fill', 'worker-fill', 'orchestrator-fill'],
              ARRAY[0, 1, 2, 3, 4])
         AS x(f, t, e, a, p, n);

-- The worker's result of each step's one attempt.
INSERT INTO tasker.step_results (step_id, task_id, attempt, outcome, result, worker_id,
                                 started_at, finished_at, recorded_at)
SELECT s.id, s.task_id, 1, 'success', '{}', 'worker-fill',
       s.started_at + interval '4 ms', s.started_at + interval '6 ms', s.started_at + interval '8 ms'
  FROM fill_steps s;

COMMIT;
