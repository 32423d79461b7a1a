-- report_outcomes: a worker's report of a batch of attempt outcomes
-- (tasker_store::step::report_batch_on). For each outcome: the result is sent
-- to the results queue (PGMQ's send, on its table); if the attempt is still the
-- step's current one, the step moves in_progress → enqueued_for_orchestration
-- (audited) and its step message is deleted. One statement, one commit.
-- Returns the number of messages sent plus deleted.
--
-- $1 = step ids (uuid[]), one per outcome
-- $2 = attempts (int[]): the attempt each outcome is for
-- $3 = bodies (jsonb[]): the result messages (StepResultMessage)
-- $4 = msg ids (bigint[]): the step messages in the step queue
-- $5 = processor_id (text): recorded in the audit rows
-- {results} = the results queue's PGMQ table, {steps} = the step queue's
-- (tasker_store::queue::substitute)
WITH input AS (
     SELECT * FROM unnest($1::uuid[], $2::int[], $3::jsonb[], $4::bigint[])
         AS i(step_id, attempt, body, msg_id)),
 moved AS (
     UPDATE tasker.steps s SET state = 'enqueued_for_orchestration', updated_at = now()
       FROM input i
      WHERE s.id = i.step_id AND s.state = 'in_progress' AND s.attempts = i.attempt
  RETURNING s.id, s.task_id, s.attempts),
 audit AS (
     INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt, processor_id)
     SELECT id, task_id, 'in_progress', 'enqueued_for_orchestration', 'reported', attempts, $5
       FROM moved),
 sent AS (
     INSERT INTO {results} (vt, message)
     SELECT clock_timestamp(), body FROM input RETURNING msg_id),
 -- A stale attempt's result is still sent (and recorded as stale), but it
 -- must not delete the message the current attempt's worker holds.
 deleted AS (
     DELETE FROM {steps} q USING input i, moved m
      WHERE q.msg_id = i.msg_id AND m.id = i.step_id RETURNING q.msg_id)
 SELECT (SELECT count(*) FROM sent) + (SELECT count(*) FROM deleted)
