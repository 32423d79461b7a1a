-- create_task: tasks, created in one statement (tasker_store::task::create,
-- create_batch): one task, or a batch of them. Inserts each task, its
-- creation path as the transitions it is made of, its steps (all pending;
-- the roots move on to enqueued, or waiting for a wait step, at once), the
-- edges, the steps' audit rows and the roots' messages, sent on PGMQ's table.
-- Everything of a task reads `task`, which lacks the tasks whose idempotency
-- key exists already (or appears earlier in the batch): nothing at all is
-- written for those. Returns the ids of the tasks inserted.
--
-- One array element per task:
-- $1 ids (uuid[]), $2 template ids (bigint[]), $3 namespaces (text[]),
-- $4 contexts (jsonb[]): the inputs, $5 priorities (int[]),
-- $6 idempotency keys (text[], NULL for none),
-- $7 run_at (timestamptz[]): a delayed start, the roots' messages visible
--   from then; NULL for at once
-- $8 schedule ids (uuid[]): the schedule that fired the task, NULL for none
-- $9, $10, $11 = the task's concurrency group under its template's limit
--   (text[], NULL for none), limit (int[]), strategy (text[]); such a task is
--   created not admitted, every root `pending` (held) until it is
-- $12 traceparents (text[]): each task's trace; its roots' messages carry it
--   in their PGMQ headers
-- $13 = processor_id (text): recorded in the audit rows
-- One array element per step, every task's steps in turn:
-- $14 task ids (uuid[]), $15 ids (uuid[]), $16 names (text[]), $17 handler
--   names (text[]), $18 handler versions (text[], NULL for any), $19 handler
--   configs (jsonb[]), $20 retry policies (jsonb[]), $21 max attempts (int[]),
--   $22 timeout seconds (int[]), $23 number of parents (int[]), $24 initial
--   states (text[]: a root is created enqueued, or waiting for a wait root,
--   or pending when held under a limit), $25 pools (text[])
-- $26, $27 = the steps' waits: signal names (text[], NULL for none), wait
--   seconds (int[], NULL for a handler step); a wait root is created
--   `waiting`, its wait beginning at run_at or now, with no message
-- $28, $29 = the steps' concurrency groups (text[], NULL for none) and limits
--   (int[]); a root under a step limit is created `pending` (held) and
--   admitted right after (tasker_store::concurrency::admit_created)
-- One array element per edge: $30 task ids, $31 parent step ids, $32 child
--   step ids (uuid[])
-- {send_roots} = how the roots' messages (every step created `enqueued`)
--   are sent (tasker_store::task): when they all go to one queue, a plain
--   INSERT on its PGMQ table (planned once per connection, like every
--   statement here); else tasker.send_step_messages, whose dynamic INSERTs
--   are planned per call
WITH input AS MATERIALIZED (
     SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::jsonb[], $5::int[], $6::text[],
                          $7::timestamptz[], $8::uuid[], $9::text[], $10::int[], $11::text[],
                          $12::text[])
         AS i(id, template_id, namespace, context, priority, idempotency_key, run_at, schedule_id,
              cgroup, climit, cstrategy, traceparent)),
 task AS (
     INSERT INTO tasker.tasks (id, template_id, namespace, context, priority, idempotency_key, state,
                               run_at, schedule_id, concurrency_group, concurrency_limit,
                               concurrency_strategy, concurrency_admitted, traceparent)
     SELECT i.id, i.template_id, i.namespace, i.context, i.priority, i.idempotency_key,
            'steps_in_process', i.run_at, i.schedule_id, i.cgroup, i.climit, i.cstrategy,
            i.cgroup IS NULL, i.traceparent
       FROM input i
     ON CONFLICT (namespace, idempotency_key) DO NOTHING
     RETURNING id),
 task_audit AS (
     INSERT INTO tasker.task_transitions (task_id, from_state, to_state, event, processor_id)
     SELECT task.id, f, t, e, $13
       FROM task, unnest(ARRAY[NULL, 'pending', 'initializing', 'enqueuing_steps']::text[],
                         ARRAY['pending', 'initializing', 'enqueuing_steps', 'steps_in_process'],
                         ARRAY['create', 'initialize', 'enqueue_steps', 'steps_enqueued'])
            AS x(f, t, e)),
 steps AS (
     INSERT INTO tasker.steps (id, task_id, name, handler_name, handler_version, handler_config,
                               retry, max_attempts, timeout_seconds, pending_parents, state, pool,
                               wait_signal, wait_seconds, attempts, started_at, wake_at,
                               concurrency_group, concurrency_limit)
     SELECT x.id, x.task_id, x.name, x.hname, x.hversion, x.hconfig, x.retry, x.max_attempts,
            x.timeout, x.parents, x.state, x.pool, x.wsignal, x.wseconds,
            CASE WHEN x.state = 'waiting' THEN 1 ELSE 0 END,
            CASE WHEN x.state = 'waiting' THEN coalesce(i.run_at, now()) END,
            CASE WHEN x.state = 'waiting'
                 THEN coalesce(i.run_at, now()) + make_interval(secs => x.wseconds) END,
            x.cgroup, x.climit
       FROM unnest($14::uuid[], $15::uuid[], $16::text[], $17::text[], $18::text[], $19::jsonb[],
                   $20::jsonb[], $21::int[], $22::int[], $23::int[], $24::text[], $25::text[],
                   $26::text[], $27::int[], $28::text[], $29::int[])
            AS x(task_id, id, name, hname, hversion, hconfig, retry, max_attempts, timeout, parents,
                 state, pool, wsignal, wseconds, cgroup, climit)
       JOIN input i ON i.id = x.task_id
      WHERE x.task_id IN (SELECT id FROM task)
     RETURNING id, task_id, state, attempts, pool),
 edges AS (
     INSERT INTO tasker.step_edges (task_id, parent_id, child_id)
     SELECT x.task_id, x.p, x.c FROM unnest($30::uuid[], $31::uuid[], $32::uuid[]) AS x(task_id, p, c)
      WHERE x.task_id IN (SELECT id FROM task)),
 step_audit AS (
     INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt, processor_id)
     SELECT s.id, s.task_id, NULL, 'pending', 'create', 0, $13 FROM steps s
     UNION ALL
     SELECT s.id, s.task_id, 'pending', s.state, 'dependencies_met', s.attempts, $13
       FROM steps s WHERE s.state <> 'pending'),
 -- The roots' messages, each with its task's start, priority and trace.
 roots AS (
     SELECT s.id, s.task_id, 'steps_' || s.pool AS queue, i.namespace, i.template_id, i.run_at,
            i.priority, i.traceparent
       FROM steps s JOIN input i ON i.id = s.task_id
      WHERE s.state = 'enqueued'),
 sent AS ({send_roots})
 SELECT task.id FROM task WHERE (SELECT count(*) FROM sent) >= 0
