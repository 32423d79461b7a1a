-- The orchestrator's read of the results queue and the processing of what it
-- read, in one statement and one (durable) commit: reads up to p_qty results
-- (a lease, as tasker.read_results), applies the successes as a set
-- (tasker.apply_successes), and returns every message read, with `applied`
-- false for those left to the caller (failures, whose next state depends on
-- the step's retry policy, decided in Rust, and anything that is not a
-- well-formed success). An applied result's columns are those of
-- tasker.process_step_results (tasker.applied_result).
--
-- Anything raised while applying rolls the subtransaction back; the batch is
-- read again and returned unapplied, and the caller applies it one result at a
-- time (in Rust: tasker_store::result::take_batch_on), so a bad message or a
-- conflict costs only itself.
-- enable_seqscan = off: every statement here reads its rows by key
-- (tasker.apply_successes says why that matters). Nested calls inherit it.
CREATE OR REPLACE FUNCTION tasker.take_step_results(p_lease_seconds integer, p_qty integer, p_processor text)
RETURNS TABLE (msg_id bigint, read_ct integer, message jsonb, applied boolean,
               step_found boolean, is_current boolean, queues text[], step_state text,
               step_attempts integer, task_before text, task_state text, enqueued integer,
               error text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
    v_cts integer[];
    v_msgs jsonb[];
    v_rows tasker.applied_result[];
BEGIN
    BEGIN
        -- Read the batch (a lease), in queue order.
        WITH taken AS (
            UPDATE pgmq.q_orchestration_results m
               SET last_read_at = clock_timestamp(),
                   vt = clock_timestamp() + make_interval(secs => p_lease_seconds),
                   read_ct = m.read_ct + 1
             WHERE m.msg_id = ANY (ARRAY(
                       SELECT q.msg_id FROM pgmq.q_orchestration_results q
                        WHERE q.vt <= clock_timestamp()
                        ORDER BY q.msg_id LIMIT p_qty
                          FOR UPDATE SKIP LOCKED))
            RETURNING m.msg_id, m.read_ct, m.message)
        SELECT array_agg(t.msg_id ORDER BY t.msg_id), array_agg(t.read_ct ORDER BY t.msg_id),
               array_agg(t.message ORDER BY t.msg_id)
          INTO v_ids, v_cts, v_msgs
          FROM taken t;
        IF v_ids IS NULL THEN
            RETURN;
        END IF;
        v_rows := tasker.apply_successes(v_ids, v_msgs, p_processor);
    EXCEPTION WHEN OTHERS THEN
        -- The set path failed: the batch is read again (the read above was
        -- rolled back with the rest) and handed back unapplied; the caller
        -- applies each result on its own (tasker_store::result::take_batch_on,
        -- through tasker.process_step_results), so a bad message or a
        -- conflict costs only itself.
        v_rows := NULL;
        SELECT array_agg(r.msg_id ORDER BY r.msg_id), array_agg(r.read_ct ORDER BY r.msg_id),
               array_agg(r.message ORDER BY r.msg_id)
          INTO v_ids, v_cts, v_msgs
          FROM tasker.read_results(p_lease_seconds, p_qty) r;
    END;

    RETURN QUERY
    SELECT x.msg_id, x.read_ct, x.message, a.msg_id IS NOT NULL, a.step_found, a.is_current,
           a.queues, a.step_state, a.step_attempts, a.task_before, a.task_state, a.enqueued,
           a.error
      FROM unnest(v_ids, v_cts, v_msgs) AS x(msg_id, read_ct, message)
      LEFT JOIN unnest(v_rows) AS a ON a.msg_id = x.msg_id
     ORDER BY x.msg_id;
END;
$$;
