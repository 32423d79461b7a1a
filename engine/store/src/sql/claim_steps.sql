-- claim_steps: a worker's claim of a batch (tasker_store::step::claim_batch).
-- Reads up to $1 messages from a namespace's step queue, leasing them for $2
-- seconds (PGMQ's read, done on the queue's table), and claims their steps:
-- enqueued (or in_progress, a lease that ran out) → in_progress, attempt + 1
-- (and recoveries + 1 for a lease that ran out: a lost worker, not a failed
-- try), audited. Returns one row per message read, with the step's full context, or
-- NULLs where the step cannot run (the message only needs deleting), or, for
-- a message a rate limit deferred, NULLs and `deferred_limit`.
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
-- Messages are read in `rank` order (the epoch second the step became ready
-- minus its task's priority: tasker.send_step_messages), on the queue's rank
-- index. A message read for a paused task (tasker.pauses) is parked instead
-- (visible at 'infinity', not counted as a read) and not returned.
--
-- Rate limits (tasker.rate_limits; tasker_store::limit). A message whose step
-- references a defined limit (tasker.template_step_limits, by the task's
-- template and the step's name) spends a token of the bucket of its limit
-- and key (the task's input at the step's key path; '' without one). Each
-- bucket is a GCRA cell (tasker.rate_buckets.tat, the theoretical arrival
-- time; T = 1 / per_second): at `now` it admits k more while
-- greatest(tat, now) + (k - 1) T <= now + (burst - 1) T, and then
-- tat = greatest(tat, now) + k T. The `admitted` upsert does this once per
-- bucket among the batch's candidates, for the first of them in rank order
-- (at most its burst). Two workers never spend the same tokens: the upsert
-- locks the bucket row, and under READ COMMITTED a claim that meets a row
-- another claim is inserting or updating waits for that transaction, then
-- computes from the newest committed version (ON CONFLICT DO UPDATE always
-- sees it, whatever the snapshot); buckets are locked in (name, key) order,
-- so claims do not deadlock. A message not admitted is deferred: hidden
-- until its bucket should admit it (its place among the refused ones times
-- T; at least 10 ms), not counted as a read, no attempt spent, returned only
-- as `deferred_limit`. A limit name not in tasker.rate_limits limits nothing.
-- With no limit defined at all the rate-limit part costs one probe of the
-- empty tasker.rate_limits (evaluated once, like the pause check).
--
-- The read and the step lock name their rows by primary key (= ANY (ARRAY(...)))
-- so the plan stays two index lookups. The claim commits asynchronously (lease
-- bookkeeping: a crash only loses the lease; a lost bucket update only lets a
-- few steps start early).
WITH candidates AS MATERIALIZED (
     SELECT q.msg_id, (q.message->>'rank')::float8 AS rank,
            CASE WHEN q.message->>'step_id' ~ '^[0-9a-f-]{36}$'
                 THEN (q.message->>'step_id')::uuid END AS step_id,
            CASE WHEN q.message->>'task_id' ~ '^[0-9a-f-]{36}$'
                 THEN (q.message->>'task_id')::uuid END AS task_id
       FROM {steps} q
      WHERE q.vt <= clock_timestamp()
        -- A scalar subquery, one primary-key lookup per message: written as
        -- NOT EXISTS, the planner turned it into a hash of every step of
        -- another handler, built on each claim (docs/performance.md).
        AND ($4::text[] IS NULL OR (
             SELECT s.handler_name = ANY ($4::text[])
                    OR ($5 AND EXISTS (SELECT 1 FROM tasker.handler_components c
                                        WHERE c.name = s.handler_name))
               FROM tasker.steps s
              WHERE s.id = CASE WHEN q.message->>'step_id' ~ '^[0-9a-f-]{36}$'
                                THEN (q.message->>'step_id')::uuid END) IS NOT FALSE)
      ORDER BY (q.message->>'rank')::float8 NULLS FIRST, q.msg_id
      LIMIT $1 FOR UPDATE OF q SKIP LOCKED),
 -- Each candidate once: whether its task is paused.
 checked AS MATERIALIZED (
     SELECT c.msg_id, c.rank, c.step_id, tasker.task_paused(c.task_id) AS paused
       FROM candidates c),
 -- The candidates of a defined limit (none of a paused task: parked, they
 -- spend nothing), each with its bucket and its place in it (rank order).
 limited AS MATERIALIZED (
     SELECT c.msg_id, x.name, x.key, x.burst, x.t,
            row_number() OVER (PARTITION BY x.name, x.key ORDER BY c.rank NULLS FIRST, c.msg_id) AS pos
       FROM checked c
      CROSS JOIN LATERAL (
            -- LIMIT 1: a lookup per candidate by primary keys, never a join
            -- over every step.
            SELECT y.name, y.burst, y.t,
                   CASE WHEN length(y.raw) <= 200 THEN y.raw ELSE 'md5:' || md5(y.raw) END AS key
              FROM (SELECT l.name, l.burst, make_interval(secs => 1 / l.per_second) AS t,
                           coalesce(tk.context #>> sl.key_path, '') AS raw
                      FROM tasker.steps s
                      JOIN tasker.tasks tk ON tk.id = s.task_id
                      JOIN tasker.template_step_limits sl
                        ON sl.template_id = tk.template_id AND sl.step_name = s.name
                      JOIN tasker.rate_limits l ON l.name = sl.limit_name
                     WHERE s.id = c.step_id AND s.state IN ('enqueued', 'in_progress')
                     LIMIT 1) y) x
      WHERE (SELECT EXISTS (SELECT 1 FROM tasker.rate_limits))
        AND NOT c.paused),
 -- One row per bucket: how many candidates want it, at most its burst
 -- (inserted as `granted`: a new bucket is a full one).
 admitted AS (
     INSERT INTO tasker.rate_buckets AS b (name, key, tat, granted)
     SELECT d.name, d.key, now() + d.want * d.t, d.want
       FROM (SELECT name, key, min(t) AS t, least(count(*), min(burst))::int AS want
               FROM limited GROUP BY name, key) d
      ORDER BY d.name, d.key
         ON CONFLICT (name, key) DO UPDATE
        SET (tat, granted) = (
            SELECT greatest(b.tat, now()) + g.k * g.t, g.k
              FROM (SELECT l.t, least(EXCLUDED.granted, greatest(0,
                           floor(extract(epoch FROM now() + (l.burst - 1) * l.t - greatest(b.tat, now()))
                                 / extract(epoch FROM l.t))::int + 1)) AS k
                      FROM (SELECT r.burst, make_interval(secs => 1 / r.per_second) AS t
                              FROM tasker.rate_limits r WHERE r.name = b.name) l) g)
  RETURNING b.name, b.key, b.tat, b.granted),
 -- The candidates their bucket did not admit, and when to look again: the
 -- j-th refused of a bucket when j more tokens will have come.
 deferred AS MATERIALIZED (
     SELECT lm.msg_id, lm.name AS limit_name,
            greatest(a.tat + (lm.pos - a.granted - lm.burst) * lm.t,
                     clock_timestamp() + interval '10 milliseconds') AS until
       FROM limited lm
       JOIN admitted a ON a.name = lm.name AND a.key = lm.key
      WHERE lm.pos > a.granted),
 read AS (
     UPDATE {steps} m
        SET last_read_at = clock_timestamp(),
            vt = CASE WHEN c.paused THEN 'infinity'
                      WHEN d.until IS NOT NULL THEN d.until
                      ELSE clock_timestamp() + make_interval(secs => $2) END,
            read_ct = m.read_ct + CASE WHEN c.paused OR d.until IS NOT NULL THEN 0 ELSE 1 END
       FROM checked c
       LEFT JOIN deferred d ON d.msg_id = c.msg_id
      WHERE m.msg_id = ANY (ARRAY(SELECT msg_id FROM checked))
        AND c.msg_id = m.msg_id
  RETURNING m.msg_id, m.read_ct, m.headers->>'traceparent' AS traceparent, c.paused AS parked, d.limit_name AS deferred_limit,
            extract(epoch FROM d.until - clock_timestamp())::float8 AS deferred_seconds,
            CASE WHEN NOT c.paused AND d.until IS NULL THEN c.step_id END AS step_id),
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
            -- Not now() (the statement's start): the message may have become
            -- visible (its vt, a delayed start's run_at) while it ran.
            started_at = coalesce(s.started_at, clock_timestamp())
       FROM target WHERE s.id = target.id
  RETURNING s.id, s.task_id, s.name, s.handler_name, s.handler_config, s.attempts,
            s.recoveries, s.max_attempts, s.timeout_seconds, target.old_state),
 -- Stamped with clock_timestamp(), which is after this statement's snapshot
 -- (now() is when the transaction began, before planning): a claim's stamp
 -- follows the commit that made its message visible, and so the stamp of
 -- whatever that commit recorded (a slot freed by a result, audit-timed by the
 -- concurrency tests).
 audit AS (
     INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event,
                                          attempt, processor_id, created_at)
     SELECT c.id, c.task_id, c.old_state, 'in_progress',
            CASE WHEN c.old_state = 'in_progress' THEN 'lease_expired_reclaim' ELSE 'claim' END,
            c.attempts, $3, clock_timestamp()
       FROM claimed c),
 -- Lease bookkeeping only: this transaction's commit need not wait for the disk.
 lease AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
 SELECT r.msg_id, r.read_ct, c.id AS step_id, c.task_id, c.name, c.handler_name,
        c.handler_config, c.attempts, c.recoveries, c.max_attempts, c.timeout_seconds, t.context,
        t.namespace, tp.name AS template_name,
        (SELECT coalesce(jsonb_object_agg(p.name, p.result), '{}'::jsonb)
           FROM tasker.step_edges e JOIN tasker.steps p ON p.id = e.parent_id
          WHERE e.child_id = c.id) AS parent_results,
        r.deferred_limit, r.deferred_seconds, coalesce(r.traceparent, t.traceparent) AS traceparent
   FROM read r
   CROSS JOIN lease
   LEFT JOIN claimed c ON c.id = r.step_id
   LEFT JOIN tasker.tasks t ON t.id = c.task_id
   LEFT JOIN tasker.templates tp ON tp.id = t.template_id
  WHERE NOT r.parked
