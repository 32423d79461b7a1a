-- create_task: a task, created in one statement (tasker_store::task::create).
-- Inserts the task, the creation path as the transitions it is made of, the
-- steps (all pending; the roots move on to enqueued, or waiting for a wait
-- step, at once), the edges, the
-- steps' audit rows and the roots' messages, sent on PGMQ's table. Every part
-- reads `task`, which is empty when the idempotency key exists already: then
-- nothing at all is written. Returns the task's id, or no row in that case.
--
-- $1 = task id (uuid)
-- $2 = template id (bigint)
-- $3 = namespace (text)
-- $4 = context (jsonb): the task's input
-- $5 = priority (int)
-- $6 = idempotency key (text, NULL for none)
-- $7 = processor_id (text): recorded in the audit rows
-- $8 .. $17 = the steps, one array element per step: $8 ids (uuid[]),
--   $9 names (text[]), $10 handler names (text[]), $11 handler versions
--   (text[], NULL for any), $12 handler configs (jsonb[]), $13 retry policies
--   (jsonb[]), $14 max attempts (int[]), $15 timeout seconds (int[]),
--   $16 number of parents (int[]), $17 initial states (text[]), $22 pools (text[])
-- $18, $19 = the edges: parent step ids (uuid[]), child step ids (uuid[])
-- $20 = the root steps' ids (uuid[]), wait roots included
-- $21 = the root steps' messages (jsonb[]), none for a wait root
-- $23 = the root steps' queues (text[], `steps_<pool>`), one per message
-- $24 = run_at (timestamptz): a delayed start, the roots' messages visible
--   from then; NULL for at once
-- $25 = schedule id (uuid): the schedule that fired the task, NULL for none
-- $26, $27 = the steps' waits: signal names (text[], NULL for none), wait
--   seconds (int[], NULL for a handler step); a wait root is created
--   `waiting` ($17), its wait beginning at run_at or now, with no message
--   (it is not among $21)
-- $28, $29 = the steps' concurrency groups (text[], NULL for none) and limits
--   (int[]); a root under a step limit is created `pending` ($17: held) and
--   admitted right after (tasker_store::concurrency::admit_created)
-- $30, $31, $32 = the task's concurrency group under its template's limit
--   (text, NULL for none), limit (int), strategy (text); such a task is
--   created not admitted, every root `pending` (held) until it is
-- $33 = the task's traceparent (text): its trace; the roots' messages carry
--   it in their PGMQ headers
-- {send_roots} = how the roots' messages are sent (tasker_store::task::create):
--   when they all go to one queue, a plain INSERT on its PGMQ table (planned
--   once per connection, like every statement here); else
--   tasker.send_step_messages, whose dynamic INSERTs are planned per call
WITH task AS (
     INSERT INTO tasker.tasks (id, template_id, namespace, context, priority, idempotency_key, state,
                               run_at, schedule_id, concurrency_group, concurrency_limit,
                               concurrency_strategy, concurrency_admitted, traceparent)
     VALUES ($1, $2, $3, $4, $5, $6, 'steps_in_process', $24, $25, $30::text, $31::int, $32::text,
             $30::text IS NULL, $33::text)
     ON CONFLICT (namespace, idempotency_key) DO NOTHING
     RETURNING id),
 task_audit AS (
     INSERT INTO tasker.task_transitions (task_id, from_state, to_state, event, processor_id)
     SELECT task.id, f, t, e, $7
       FROM task, unnest(ARRAY[NULL, 'pending', 'initializing', 'enqueuing_steps']::text[],
                         ARRAY['pending', 'initializing', 'enqueuing_steps', 'steps_in_process'],
                         ARRAY['create', 'initialize', 'enqueue_steps', 'steps_enqueued'])
            AS x(f, t, e)),
 steps AS (
     INSERT INTO tasker.steps (id, task_id, name, handler_name, handler_version, handler_config,
                               retry, max_attempts, timeout_seconds, pending_parents, state, pool,
                               wait_signal, wait_seconds, attempts, started_at, wake_at,
                               concurrency_group, concurrency_limit)
     SELECT x.id, task.id, name, hname, hversion, hconfig, retry, max_attempts, timeout, parents, state,
            pool, wsignal, wseconds,
            CASE WHEN state = 'waiting' THEN 1 ELSE 0 END,
            CASE WHEN state = 'waiting' THEN coalesce($24::timestamptz, now()) END,
            CASE WHEN state = 'waiting'
                 THEN coalesce($24::timestamptz, now()) + make_interval(secs => wseconds) END,
            cgroup, climit
       FROM task, unnest($8::uuid[], $9::text[], $10::text[], $11::text[], $12::jsonb[], $13::jsonb[],
                         $14::int[], $15::int[], $16::int[], $17::text[], $22::text[],
                         $26::text[], $27::int[], $28::text[], $29::int[])
            AS x(id, name, hname, hversion, hconfig, retry, max_attempts, timeout, parents, state,
                 pool, wsignal, wseconds, cgroup, climit)
     RETURNING id, state, attempts),
 edges AS (
     INSERT INTO tasker.step_edges (task_id, parent_id, child_id)
     SELECT task.id, p, c FROM task, unnest($18::uuid[], $19::uuid[]) AS x(p, c)),
 step_audit AS (
     INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt, processor_id)
     SELECT x.id, task.id, NULL, 'pending', 'create', 0, $7 FROM task, unnest($8::uuid[]) AS x(id)
     UNION ALL
     SELECT y.id, task.id, 'pending', s.state, 'dependencies_met', s.attempts, $7
       FROM task, unnest($20::uuid[]) AS y(id) JOIN steps s ON s.id = y.id),
 sent AS ({send_roots})
 SELECT task.id FROM task WHERE (SELECT count(*) FROM sent) >= 0
