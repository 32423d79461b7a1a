-- claim_steps: a worker's claim of a batch (tasker_store::step::claim_batch).
-- Reads up to $1 messages from a namespace's step queue, leasing them for $2
-- seconds (PGMQ's read, done on the queue's table), and claims their steps:
-- enqueued (or in_progress, a lease that ran out) → in_progress, attempt + 1
-- (and recoveries + 1 for a lease that ran out: a lost worker, not a failed
-- try), audited. Returns one row per message read, with the step's full context, or
-- NULLs where the step cannot run (the message only needs deleting).
-- A message whose step this worker has no handler for is not read at all: it
-- stays visible for a worker that has one, and no attempt is spent.
--
-- $1 = qty (int): how many messages at most
-- $2 = lease_seconds (int): how long the messages stay hidden
-- $3 = processor_id (text): recorded in the audit rows
-- $4 = the handler names the worker runs (text[]; NULL: any handler)
-- $5 = whether it also runs uploaded WASM components (boolean)
-- {steps} = the step queue's PGMQ table (tasker_store::queue::substitute)
--
-- The read and the step lock name their rows by primary key (= ANY (ARRAY(...)))
-- so the plan stays two index lookups. The claim commits asynchronously (lease
-- bookkeeping: a crash only loses the lease).
WITH read AS (
     UPDATE {steps} m
        SET last_read_at = clock_timestamp(),
            vt = clock_timestamp() + make_interval(secs => $2),
            read_ct = m.read_ct + 1
      WHERE m.msg_id = ANY (ARRAY(
                SELECT q.msg_id FROM {steps} q
                 WHERE q.vt <= clock_timestamp()
                   AND ($4::text[] IS NULL OR NOT EXISTS (
                        SELECT 1 FROM tasker.steps s
                         WHERE s.id = CASE WHEN q.message->>'step_id' ~ '^[0-9a-f-]{36}$'
                                           THEN (q.message->>'step_id')::uuid END
                           AND s.handler_name <> ALL ($4::text[])
                           AND NOT ($5 AND EXISTS (SELECT 1 FROM tasker.handler_components c
                                                    WHERE c.name = s.handler_name))))
                 ORDER BY q.msg_id LIMIT $1 FOR UPDATE OF q SKIP LOCKED))
  RETURNING m.msg_id, m.read_ct,
            CASE WHEN m.message->>'step_id' ~ '^[0-9a-f-]{36}$'
                 THEN (m.message->>'step_id')::uuid END AS step_id),
 target AS (
     SELECT s.id, s.state AS old_state
       FROM tasker.steps s
      WHERE s.id = ANY (ARRAY(SELECT r.step_id FROM read r))
        AND s.state IN ('enqueued', 'in_progress')
        FOR UPDATE OF s),
 claimed AS (
     UPDATE tasker.steps s
        SET state = 'in_progress', attempts = s.attempts + 1, updated_at = now(),
            recoveries = s.recoveries + (target.old_state = 'in_progress')::integer,
            started_at = coalesce(s.started_at, now())
       FROM target WHERE s.id = target.id
  RETURNING s.id, s.task_id, s.name, s.handler_name, s.handler_config, s.attempts,
            s.recoveries, s.max_attempts, s.timeout_seconds, target.old_state),
 audit AS (
     INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt, processor_id)
     SELECT c.id, c.task_id, c.old_state, 'in_progress',
            CASE WHEN c.old_state = 'in_progress' THEN 'lease_expired_reclaim' ELSE 'claim' END,
            c.attempts, $3
       FROM claimed c),
 -- Lease bookkeeping only: this transaction's commit need not wait for the disk.
 lease AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
 SELECT r.msg_id, r.read_ct, c.id AS step_id, c.task_id, c.name, c.handler_name,
        c.handler_config, c.attempts, c.recoveries, c.max_attempts, c.timeout_seconds, t.context,
        t.namespace, tp.name AS template_name,
        (SELECT coalesce(jsonb_object_agg(p.name, p.result), '{}'::jsonb)
           FROM tasker.step_edges e JOIN tasker.steps p ON p.id = e.parent_id
          WHERE e.child_id = c.id) AS parent_results
   FROM read r
   CROSS JOIN lease
   LEFT JOIN claimed c ON c.id = r.step_id
   LEFT JOIN tasker.tasks t ON t.id = c.task_id
   LEFT JOIN tasker.templates tp ON tp.id = t.template_id
