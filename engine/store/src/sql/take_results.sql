-- take_results: the orchestrator's one call per batch of results
-- (tasker_store::result::take_batch_on). tasker.take_step_results
-- (migrations/functions/take_step_results.sql) reads up to $2 results, applies
-- the successes as a set and returns every message read; `applied` is false
-- for those left to the caller (failures, unreadable messages).
--
-- $1 = lease_seconds (int): how long the messages read stay hidden
-- $2 = qty (int): how many messages at most
-- $3 = processor_id (text): recorded in the audit rows
SELECT msg_id, message, applied, step_found, is_current, queues, step_state,
       step_attempts, task_before, task_state, enqueued, error
  FROM tasker.take_step_results($1, $2, $3)
