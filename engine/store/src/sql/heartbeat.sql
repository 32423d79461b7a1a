-- heartbeat: a running step's lease extension (tasker_store::step::heartbeat).
-- Hides the step message for another $3 seconds (PGMQ's set_vt) and answers
-- whether to go on — only while the heartbeating attempt is still the step's
-- current one and the task is not in a terminal state. A worker whose step was
-- taken over (its lease ran out: it stalled, say) extends nothing and is told
-- to stop, so it cannot keep the current attempt's lease alive. No row when
-- there is no such step of that task.
--
-- $1 = queue (text): the step queue's name
-- $2 = msg_id (bigint): the step message
-- $3 = lease_seconds (int)
-- $4 = task_id (uuid)
-- $5 = step_id (uuid)
-- $6 = attempt (int): the attempt the worker runs
-- {terminal_states} = TaskState::terminal_sql_list(), substituted once in Rust
SELECT CASE WHEN s.state = 'in_progress' AND s.attempts = $6
                 AND t.state NOT IN ({terminal_states})
            THEN EXISTS (SELECT 1 FROM pgmq.set_vt($1, $2::bigint, $3::integer))
            ELSE false END
  FROM tasker.tasks t JOIN tasker.steps s ON s.task_id = t.id
 WHERE t.id = $4 AND s.id = $5
