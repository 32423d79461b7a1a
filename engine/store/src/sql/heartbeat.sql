-- heartbeat: a running step's lease extension (tasker_store::step::heartbeat).
-- Hides the step message for another $3 seconds (PGMQ's set_vt) and answers
-- whether to go on: true while the message exists and the task is not in a
-- terminal state; no row when there is no such task.
--
-- $1 = queue (text): the step queue's name
-- $2 = msg_id (bigint): the step message
-- $3 = lease_seconds (int)
-- $4 = task_id (uuid)
-- {terminal_states} = TaskState::terminal_sql_list(), substituted once in Rust
SELECT EXISTS (SELECT 1 FROM pgmq.set_vt($1, $2::bigint, $3::integer))
       AND state NOT IN ({terminal_states})
  FROM tasker.tasks WHERE id = $4
