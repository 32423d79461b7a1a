-- Sends step messages: p_msgs[i] to the queue p_queues[i] (`steps_<pool>`),
-- one INSERT on PGMQ's table per distinct queue, in the caller's transaction,
-- visible from p_vt (a delayed start's `run_at`; NULL: at once).
-- Returns how many were sent. The one place a step message is sent from SQL
-- (tasker.enqueue_steps, tasker.take_step_results, create_task.sql).
DROP FUNCTION IF EXISTS tasker.send_step_messages(text[], jsonb[]);
CREATE OR REPLACE FUNCTION tasker.send_step_messages(p_queues text[], p_msgs jsonb[],
                                                     p_vt timestamptz DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
BEGIN
    IF p_msgs IS NULL OR cardinality(p_msgs) = 0 THEN
        RETURN 0;
    END IF;
    FOR v_queue IN SELECT DISTINCT q FROM unnest(p_queues) AS q LOOP
        EXECUTE format('INSERT INTO pgmq.%I (vt, message) '
                       'SELECT coalesce($4, clock_timestamp()), m '
                       'FROM unnest($1, $2) AS x(q, m) WHERE x.q = $3', 'q_' || v_queue)
            USING p_queues, p_msgs, v_queue, p_vt;
    END LOOP;
    RETURN cardinality(p_msgs);
END;
$$;
