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
-- order, task then steps, so the two never deadlock), and after the report
-- tasker.apply_reported applies the successes it sent as a take would and
-- returns its rows; failures, and successes it could not apply, stay in the
-- results queue for an orchestrator. Without p_apply nothing is returned.
--
-- p_queue: the step queue's name (validated by the caller; quoted here). The
-- delete from it is the one dynamic statement.
CREATE OR REPLACE FUNCTION tasker.report_outcomes(
    p_queue text, p_steps uuid[], p_attempts integer[], p_bodies jsonb[], p_msg_ids bigint[],
    p_processor text, p_apply boolean)
RETURNS TABLE (msg_id bigint, read_ct integer, message jsonb, applied boolean,
               step_found boolean, is_current boolean, queues text[], step_state text,
               step_attempts integer, task_before text, task_state text, enqueued integer,
               error text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_sent bigint[];
    v_moved bigint[];
BEGIN
    IF p_apply THEN
        PERFORM 1 FROM tasker.tasks t
         WHERE t.id = ANY (ARRAY(SELECT (b->>'task_id')::uuid FROM unnest(p_bodies) AS b
                                  WHERE b->'outcome'->>'status' = 'success'))
         ORDER BY t.id FOR UPDATE;
    END IF;

    WITH input AS (
         SELECT * FROM unnest(p_steps, p_attempts, p_bodies, p_msg_ids)
             AS i(step_id, attempt, body, msg_id)),
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
           FROM moved m),
     sent AS (
         INSERT INTO pgmq.q_orchestration_results (vt, message)
         SELECT clock_timestamp(), i.body FROM input i
      RETURNING msg_id, message->'outcome'->>'status' = 'success' AS success)
    SELECT ARRAY(SELECT s.msg_id FROM sent s WHERE s.success ORDER BY s.msg_id),
           ARRAY(SELECT m.msg_id FROM moved m)
      INTO v_sent, v_moved;

    IF cardinality(v_moved) > 0 THEN
        EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = ANY ($1)', 'q_' || p_queue)
          USING v_moved;
    END IF;

    IF p_apply AND cardinality(v_sent) > 0 THEN
        RETURN QUERY SELECT * FROM tasker.apply_reported(v_sent, p_processor);
    END IF;
END;
$$;
