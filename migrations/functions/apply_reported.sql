-- A worker's application of the successes it has just reported, in the
-- report's own transaction (tasker_store::step::report_and_apply_on): p_ids
-- are the result messages the report sent to the results queue moments ago,
-- not yet visible to anyone else. The caller locked their tasks (id order)
-- before the report moved the steps, so the lock order is the orchestrator's:
-- task, then steps. The successes among them are applied as a set
-- (tasker.apply_successes: the step completes, its ready children are
-- enqueued, the task is re-decided) and their messages deleted; whatever is
-- not applied (a failure, a stale or malformed result, or the whole batch when
-- applying it raised: the subtransaction is rolled back) stays in the queue,
-- where the orchestrator takes it as it takes any result. Returns the rows of
-- tasker.take_step_results, for the messages found.
CREATE OR REPLACE FUNCTION tasker.apply_reported(p_ids bigint[], p_processor text)
RETURNS TABLE (msg_id bigint, read_ct integer, message jsonb, applied boolean,
               step_found boolean, is_current boolean, queues text[], step_state text,
               step_attempts integer, task_before text, task_state text, enqueued integer,
               error text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
    v_cts integer[];
    v_msgs jsonb[];
    v_rows tasker.applied_result[];
BEGIN
    SELECT array_agg(q.msg_id ORDER BY q.msg_id), array_agg(q.read_ct ORDER BY q.msg_id),
           array_agg(q.message ORDER BY q.msg_id)
      INTO v_ids, v_cts, v_msgs
      FROM pgmq.q_orchestration_results q
     WHERE q.msg_id = ANY (p_ids);
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    BEGIN
        v_rows := tasker.apply_successes(v_ids, v_msgs, p_processor);
    EXCEPTION WHEN OTHERS THEN
        -- Left to the orchestrator, one result at a time if need be.
        v_rows := NULL;
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
