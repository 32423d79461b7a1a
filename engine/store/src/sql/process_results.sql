-- process_results: the results take_results left, decided in Rust, applied one
-- per subtransaction in one statement and one commit
-- (tasker_store::result::process_batch). tasker.process_step_results
-- (migrations/functions/process_step_results.sql) answers one row per result,
-- in the order given; `error` is set where a result was rolled back.
--
-- One array element per result:
-- $1 = msg ids (bigint[]): the messages in the results queue
-- $2 = task ids (uuid[])
-- $3 = step ids (uuid[])
-- $4 = attempts (int[])
-- $5 = outcomes (text[]): success, retryable_error or permanent_error
-- $6 = results (jsonb[]): a success's result, NULL for a failure
-- $7 = errors (jsonb[]): a failure's error, NULL for a success
-- $8 = worker ids (text[])
-- $9 = started at (timestamptz[])
-- $10 = finished at (timestamptz[])
-- $11 = the steps' next states (text[])
-- $12 = the transitions' events (text[])
-- $13 = the transitions' reasons (text[])
-- $14 = next retry at (timestamptz[]): set for waiting_for_retry
-- $15 = processor_id (text): recorded in the audit rows
SELECT msg_id, step_found, is_current, queues, step_state, step_attempts,
       task_before, task_state, enqueued, error
  FROM tasker.process_step_results(
       $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
