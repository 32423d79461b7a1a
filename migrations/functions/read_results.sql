-- The orchestrator's read of the results queue (PGMQ's read, static); only a
-- lease: it commits asynchronously. It keeps to the primary key whatever the
-- table statistics say (a join to the locked ids was planned as a hash join
-- over the whole table).
CREATE OR REPLACE FUNCTION tasker.read_results(p_lease_seconds integer, p_qty integer)
RETURNS TABLE (msg_id bigint, read_ct integer, message jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    UPDATE pgmq.q_orchestration_results m
       SET last_read_at = clock_timestamp(),
           vt = clock_timestamp() + make_interval(secs => p_lease_seconds),
           read_ct = m.read_ct + 1
     WHERE m.msg_id = ANY (ARRAY(
               SELECT q.msg_id FROM pgmq.q_orchestration_results q
                WHERE q.vt <= clock_timestamp()
                ORDER BY q.msg_id LIMIT p_qty
                  FOR UPDATE SKIP LOCKED))
    RETURNING m.msg_id, m.read_ct, m.message;
END;
$$;
