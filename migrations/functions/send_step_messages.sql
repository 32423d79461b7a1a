-- Sends step messages: p_msgs[i] to the queue p_queues[i] (`steps_<pool>`),
-- one INSERT on PGMQ's table per distinct queue, in the caller's transaction,
-- visible from p_vt (a delayed start's `run_at`; NULL: at once).
-- Returns how many were sent. The one place a step message is sent from SQL
-- (tasker.enqueue_steps, tasker.apply_successes, create_task.sql).
--
-- Each message gets its claim order, `rank`: the epoch second it becomes
-- visible minus its task's priority (a message's own `priority` key, set by
-- create_task.sql for a task not committed yet, wins over the task row). A
-- message of a paused task (tasker.pauses) is parked: visible at 'infinity'
-- until the pause is lifted. Its PGMQ `headers` carry the task's trace,
-- {"traceparent": ...} (a message's own `traceparent` key, set by
-- create_task.sql, wins), for the worker's span of the attempt. A message's
-- own `run_at` key (create_task.sql: each task of a batch has its own start)
-- wins over p_vt.
--
-- The rows are computed by one static statement (planned once per session);
-- the per-queue INSERT, the one dynamic statement, only unnests them, so its
-- planning is cheap: 113-156 us a call for one message against 257-363 us
-- when the whole computation was the dynamic statement (3,000 calls in a
-- loop; a static INSERT alone is 31 us; docs/performance.md).
-- enable_seqscan = off: its tasks are read by key (tasker.apply_successes
-- says why that matters).
DROP FUNCTION IF EXISTS tasker.send_step_messages(text[], jsonb[]);
CREATE OR REPLACE FUNCTION tasker.send_step_messages(p_queues text[], p_msgs jsonb[],
                                                     p_vt timestamptz DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    v_queue text;
    v_any_pause boolean := EXISTS (SELECT 1 FROM tasker.pauses);
    v_vts timestamptz[];
    v_bodies jsonb[];
    v_headers jsonb[];
BEGIN
    IF p_msgs IS NULL OR cardinality(p_msgs) = 0 THEN
        RETURN 0;
    END IF;
    SELECT array_agg(CASE WHEN v_any_pause AND tasker.task_paused(t.id) THEN 'infinity'
                          ELSE coalesce((x.m->>'run_at')::timestamptz, p_vt, clock_timestamp())
                     END ORDER BY x.n),
           array_agg((x.m - 'priority' - 'traceparent' - 'run_at') || jsonb_build_object('rank',
                         extract(epoch FROM coalesce((x.m->>'run_at')::timestamptz, p_vt,
                                                     clock_timestamp()))
                         - coalesce((x.m->>'priority')::float8, t.priority, 0)) ORDER BY x.n),
           array_agg(jsonb_strip_nulls(jsonb_build_object('traceparent',
                         coalesce(x.m->>'traceparent', t.traceparent))) ORDER BY x.n)
      INTO v_vts, v_bodies, v_headers
      FROM unnest(p_queues, p_msgs) WITH ORDINALITY AS x(q, m, n)
      LEFT JOIN tasker.tasks t ON t.id = (x.m->>'task_id')::uuid;
    FOR v_queue IN SELECT DISTINCT q FROM unnest(p_queues) AS q LOOP
        EXECUTE format('INSERT INTO pgmq.%I (vt, message, headers)
                        SELECT x.v, x.b, x.h FROM unnest($1, $2, $3, $4) AS x(v, b, h, q)
                         WHERE x.q = $5', 'q_' || v_queue)
          USING v_vts, v_bodies, v_headers, p_queues, v_queue;
    END LOOP;
    RETURN cardinality(p_msgs);
END;
$$;
