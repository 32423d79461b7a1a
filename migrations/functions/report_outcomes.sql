-- A worker's report of a batch of attempt outcomes on one step queue
-- (tasker_store::step::report_batch_on, report_and_apply_on): one statement,
-- one commit. For each outcome the result is sent to the results queue (PGMQ's
-- send, on its table); if the attempt is still the step's current one, the
-- step moves in_progress -> enqueued_for_orchestration (audited) and its step
-- message is deleted. A stale attempt's result is still sent (the
-- orchestrator records it as stale) but leaves the message the current
-- attempt's worker holds.
--
-- With p_apply the worker also applies its successes in the same commit: the
-- tasks of the successes are locked first (id order: the orchestrator's lock
-- order, task then steps, so the two never deadlock), and after the steps
-- moved, tasker.apply_successes applies the successes as a take would (the
-- step completes, its ready children are enqueued, the task is re-decided),
-- in a subtransaction. Only what it did not apply is sent to the results
-- queue: failures (an orchestrator decides their retry), and every outcome of
-- the batch when applying raised (rolled back; an orchestrator takes them one
-- by one). Returns the rows of tasker.take_step_results for the outcomes
-- applied (msg_id: minus the outcome's position in the arrays, as they were
-- never queued; read_ct 0). Without p_apply every result is sent and nothing
-- is returned.
--
-- p_queue: the step queue's name (validated by the caller; quoted here). The
-- delete from it is the one dynamic statement.
-- enable_seqscan = off: every statement here reads its rows by key
-- (tasker.apply_successes says why that matters). Nested calls inherit it.
CREATE OR REPLACE FUNCTION tasker.report_outcomes(
    p_queue text, p_steps uuid[], p_attempts integer[], p_bodies jsonb[], p_msg_ids bigint[],
    p_processor text, p_apply boolean)
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
    v_moved bigint[];
    v_rows tasker.applied_result[];
    v_applied bigint[] := '{}';
    -- Only a batch with a success has anything to apply (and to lock).
    v_apply boolean := p_apply AND EXISTS (
        SELECT 1 FROM unnest(p_bodies) AS b WHERE b->'outcome'->>'status' = 'success');
BEGIN
    IF v_apply THEN
        PERFORM 1 FROM tasker.tasks t
         WHERE t.id = ANY (ARRAY(SELECT (b->>'task_id')::uuid FROM unnest(p_bodies) AS b
                                  WHERE b->'outcome'->>'status' = 'success'))
         ORDER BY t.id FOR UPDATE;
    END IF;

    WITH input AS (
         SELECT * FROM unnest(p_steps, p_attempts, p_msg_ids) AS i(step_id, attempt, msg_id)),
     moved AS (
         UPDATE tasker.steps s SET state = 'enqueued_for_orchestration', updated_at = now()
           FROM input i
          WHERE s.id = i.step_id AND s.state = 'in_progress' AND s.attempts = i.attempt
      RETURNING s.id, s.task_id, s.attempts, i.msg_id),
     audit AS (
         INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event,
                                              attempt, processor_id, created_at)
         SELECT m.id, m.task_id, 'in_progress', 'enqueued_for_orchestration', 'reported',
                m.attempts, p_processor, clock_timestamp()
           FROM moved m)
    SELECT ARRAY(SELECT m.msg_id FROM moved m) INTO v_moved;

    IF v_apply THEN
        BEGIN
            v_rows := tasker.apply_successes(
                ARRAY(SELECT -g FROM generate_subscripts(p_bodies, 1) AS g), p_bodies, p_processor);
            v_applied := ARRAY(SELECT -a.msg_id FROM unnest(v_rows) AS a);
        EXCEPTION WHEN OTHERS THEN
            v_rows := NULL;
        END;
    END IF;

    -- PGMQ's send, on its table: every result not applied here.
    INSERT INTO pgmq.q_orchestration_results (vt, message)
    SELECT clock_timestamp(), x.body
      FROM unnest(p_bodies) WITH ORDINALITY AS x(body, n)
     WHERE x.n <> ALL (v_applied)
     ORDER BY x.n;

    IF cardinality(v_moved) > 0 THEN
        EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = ANY ($1)', 'q_' || p_queue)
          USING v_moved;
    END IF;

    RETURN QUERY
    SELECT a.msg_id, 0, p_bodies[(-a.msg_id)::integer], true, a.step_found, a.is_current, a.queues,
           a.step_state, a.step_attempts, a.task_before, a.task_state, a.enqueued, a.error
      FROM unnest(v_rows) AS a;
END;
$$;
