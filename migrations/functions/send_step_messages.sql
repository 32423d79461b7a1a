-- Sends step messages: p_msgs[i] to the queue p_queues[i] (`steps_<pool>`),
-- one INSERT on PGMQ's table per distinct queue, in the caller's transaction,
-- visible from p_vt (a delayed start's `run_at`; NULL: at once).
-- Returns how many were sent. The one place a step message is sent from SQL
-- (tasker.enqueue_steps, tasker.take_step_results, create_task.sql).
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
DROP FUNCTION IF EXISTS tasker.send_step_messages(text[], jsonb[]);
CREATE OR REPLACE FUNCTION tasker.send_step_messages(p_queues text[], p_msgs jsonb[],
                                                     p_vt timestamptz DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
    v_any_pause boolean := EXISTS (SELECT 1 FROM tasker.pauses);
BEGIN
    IF p_msgs IS NULL OR cardinality(p_msgs) = 0 THEN
        RETURN 0;
    END IF;
    FOR v_queue IN SELECT DISTINCT q FROM unnest(p_queues) AS q LOOP
        EXECUTE format(
            'INSERT INTO pgmq.%I (vt, message, headers)
             SELECT CASE WHEN $5 AND tasker.task_paused(t.id) THEN ''infinity''
                         ELSE coalesce((x.m->>''run_at'')::timestamptz, $4, clock_timestamp()) END,
                    (x.m - ''priority'' - ''traceparent'' - ''run_at'') || jsonb_build_object(''rank'',
                        extract(epoch FROM coalesce((x.m->>''run_at'')::timestamptz, $4,
                                                    clock_timestamp()))
                        - coalesce((x.m->>''priority'')::float8, t.priority, 0)),
                    jsonb_strip_nulls(jsonb_build_object(''traceparent'',
                        coalesce(x.m->>''traceparent'', t.traceparent)))
               FROM unnest($1, $2) AS x(q, m)
               LEFT JOIN tasker.tasks t ON t.id = (x.m->>''task_id'')::uuid
              WHERE x.q = $3', 'q_' || v_queue)
            USING p_queues, p_msgs, v_queue, p_vt, v_any_pause;
    END LOOP;
    RETURN cardinality(p_msgs);
END;
$$;
