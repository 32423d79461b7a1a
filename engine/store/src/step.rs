//! The worker's side of a step: claiming a batch from the queue, and reporting
//! an outcome (result sent + step message deleted, in one statement); and
//! reading one step and its transition history back.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::task::StepRow;
use super::StoreError;
use crate::queue::RESULTS_QUEUE;
use tasker_model::change::Changed;
use tasker_model::state::TaskState;
use tasker_model::step::{StepContext, StepResultMessage};

/// One message read from a step queue.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub msg_id: i64,
    /// How many times the queue handed this message out (lease expiries + 1).
    pub read_ct: i32,
    /// The step to run; `None` when the step cannot run any more (complete,
    /// cancelled, resolved, unknown): the message only needs deleting.
    pub step: Option<StepContext>,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    msg_id: i64,
    read_ct: i32,
    step_id: Option<Uuid>,
    task_id: Option<Uuid>,
    name: Option<String>,
    handler_name: Option<String>,
    handler_config: Option<Value>,
    attempts: Option<i32>,
    max_attempts: Option<i32>,
    timeout_seconds: Option<i32>,
    context: Option<Value>,
    namespace: Option<String>,
    template_name: Option<String>,
    parent_results: Option<Value>,
}

/// Reads up to `qty` messages from `queue` with a lease of `lease_seconds`,
/// and claims their steps (→ in_progress, attempt + 1, audited), returning
/// each step's full context: one statement, PGMQ's read on the queue's table
/// (static SQL per queue, prepared once per connection) joined to the claim.
///
/// The read and the step lock name their rows by primary key (`= ANY
/// (ARRAY(...))`), so the plan stays two index lookups whatever the table
/// statistics say (a join was planned as a hash join over every step).
///
/// The claim is lease bookkeeping and commits asynchronously: a crash can only
/// lose the lease, which makes the message visible again (at-least-once). One
/// statement sees one snapshot; the message and its step's `enqueued` state
/// are committed by the same transaction, so it sees both or neither.
pub async fn claim_batch<'c>(
    db: impl sqlx::PgExecutor<'c>,
    queue: &str,
    lease_seconds: i32,
    qty: i32,
    processor_id: &str,
) -> Result<Vec<Claimed>, StoreError> {
    let sql = format!(
        "WITH read AS (
             UPDATE {q} m
                SET last_read_at = clock_timestamp(),
                    vt = clock_timestamp() + make_interval(secs => $2),
                    read_ct = m.read_ct + 1
              WHERE m.msg_id = ANY (ARRAY(
                        SELECT msg_id FROM {q} WHERE vt <= clock_timestamp()
                         ORDER BY msg_id LIMIT $1 FOR UPDATE SKIP LOCKED))
          RETURNING m.msg_id, m.read_ct,
                    CASE WHEN m.message->>'step_id' ~ '^[0-9a-f-]{{36}}$'
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
                    started_at = coalesce(s.started_at, now())
               FROM target WHERE s.id = target.id
          RETURNING s.id, s.task_id, s.name, s.handler_name, s.handler_config, s.attempts,
                    s.max_attempts, s.timeout_seconds, target.old_state),
         audit AS (
             INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt, processor_id)
             SELECT c.id, c.task_id, c.old_state, 'in_progress',
                    CASE WHEN c.old_state = 'in_progress' THEN 'lease_expired_reclaim' ELSE 'claim' END,
                    c.attempts, $3
               FROM claimed c),
         -- Lease bookkeeping only: this transaction's commit need not wait for the disk.
         lease AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
         SELECT r.msg_id, r.read_ct, c.id AS step_id, c.task_id, c.name, c.handler_name,
                c.handler_config, c.attempts, c.max_attempts, c.timeout_seconds, t.context,
                t.namespace, tp.name AS template_name,
                (SELECT coalesce(jsonb_object_agg(p.name, p.result), '{{}}'::jsonb)
                   FROM tasker.step_edges e JOIN tasker.steps p ON p.id = e.parent_id
                  WHERE e.child_id = c.id) AS parent_results
           FROM read r
           CROSS JOIN lease
           LEFT JOIN claimed c ON c.id = r.step_id
           LEFT JOIN tasker.tasks t ON t.id = c.task_id
           LEFT JOIN tasker.templates tp ON tp.id = t.template_id",
        q = crate::queue::table(queue)?,
    );
    let rows: Vec<ClaimRow> = sqlx::query_as(&sql)
        .bind(qty)
        .bind(lease_seconds)
        .bind(processor_id)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(Claimed::from).collect())
}

impl From<ClaimRow> for Claimed {
    fn from(r: ClaimRow) -> Claimed {
        let step = match (r.step_id, r.task_id, r.name, r.handler_name, r.attempts) {
            (Some(step_id), Some(task_id), Some(step_name), Some(handler), Some(attempts)) => {
                let parent_results: BTreeMap<String, Value> = match r.parent_results {
                    Some(Value::Object(m)) => m.into_iter().collect(),
                    _ => BTreeMap::new(),
                };
                Some(StepContext {
                    task_id,
                    step_id,
                    namespace: r.namespace.unwrap_or_default(),
                    template: r.template_name.unwrap_or_default(),
                    step_name,
                    handler,
                    attempt: attempts.max(0) as u32,
                    max_attempts: r.max_attempts.unwrap_or(1).max(1) as u32,
                    input: r.context.unwrap_or(Value::Null),
                    parent_results,
                    config: r.handler_config.unwrap_or(Value::Null),
                    timeout_seconds: r.timeout_seconds.unwrap_or(30).max(1) as u32,
                })
            }
            _ => None,
        };
        Claimed {
            msg_id: r.msg_id,
            read_ct: r.read_ct,
            step,
        }
    }
}

/// Reports an attempt's outcome: the step moves to enqueued_for_orchestration
/// (if this attempt is still current), the result goes to the results queue and
/// the step message is deleted — one statement, one commit. A stale attempt
/// (reclaimed after its lease expired) leaves the message alone.
pub async fn report(
    pool: &PgPool,
    queue: &str,
    msg_id: i64,
    result: &StepResultMessage,
    processor_id: &str,
) -> Result<Changed, StoreError> {
    report_batch(pool, queue, &[(msg_id, result.clone())], processor_id).await
}

/// [`report`] for several outcomes of one queue's steps in one statement (the
/// worker's reporter sends what has piled up while a report was in flight).
/// Each row keeps its own rule: the result is always sent; the step moves and
/// its message is deleted only if that attempt is current.
pub async fn report_batch(
    pool: &PgPool,
    queue: &str,
    outcomes: &[(i64, StepResultMessage)],
    processor_id: &str,
) -> Result<Changed, StoreError> {
    let mut conn = pool.acquire().await?;
    report_batch_on(&mut conn, queue, outcomes, processor_id).await
}

/// [`report_batch`] with its statement on `conn` (a connection the caller
/// keeps between reports).
pub async fn report_batch_on(
    conn: &mut sqlx::PgConnection,
    queue: &str,
    outcomes: &[(i64, StepResultMessage)],
    processor_id: &str,
) -> Result<Changed, StoreError> {
    if outcomes.is_empty() {
        return Ok(Changed::none());
    }
    let mut msg_ids = Vec::with_capacity(outcomes.len());
    let mut step_ids = Vec::with_capacity(outcomes.len());
    let mut attempts = Vec::with_capacity(outcomes.len());
    let mut bodies = Vec::with_capacity(outcomes.len());
    for (msg_id, r) in outcomes {
        msg_ids.push(*msg_id);
        step_ids.push(r.step_id);
        attempts.push(r.attempt as i32);
        bodies.push(serde_json::to_value(r).map_err(|e| StoreError::Corrupt(e.to_string()))?);
    }
    // PGMQ's send and delete, on its tables directly: one statement,
    // prepared once per queue.
    let sql = format!(
        "WITH input AS (
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
         SELECT (SELECT count(*) FROM sent) + (SELECT count(*) FROM deleted)",
        results = crate::queue::table(RESULTS_QUEUE)?,
        steps = crate::queue::table(queue)?,
    );
    sqlx::query(&sql)
        .bind(&step_ids)
        .bind(&attempts)
        .bind(&bodies)
        .bind(&msg_ids)
        .bind(processor_id)
        .execute(&mut *conn)
        .await?;
    Ok(Changed::queue(RESULTS_QUEUE))
}

/// Deletes a step message whose step cannot run (already finished elsewhere).
pub async fn discard(pool: &PgPool, queue: &str, msg_id: i64) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    crate::queue::delete(&mut conn, queue, msg_id).await?;
    Ok(())
}

/// Extends the lease of a running step and says whether to go on: false once
/// the task was cancelled or resolved, or the message is gone (another worker
/// took the step over) — the handler should stop.
pub async fn heartbeat(
    pool: &PgPool,
    queue: &str,
    msg_id: i64,
    lease_seconds: i32,
    task_id: Uuid,
) -> Result<bool, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT EXISTS (SELECT 1 FROM pgmq.set_vt($1, $2::bigint, $3::integer))
                    AND state NOT IN ({})
               FROM tasker.tasks WHERE id = $4",
            TaskState::terminal_sql_list()
        )
    });
    let live: Option<bool> = sqlx::query_scalar(SQL.as_str())
        .bind(queue)
        .bind(msg_id)
        .bind(lease_seconds)
        .bind(task_id)
        .fetch_optional(pool)
        .await?;
    Ok(live.unwrap_or(false))
}

/// A step of `task_id` by id (when `step` parses as a UUID) or by name.
pub async fn find(pool: &PgPool, task_id: Uuid, step: &str) -> Result<Option<StepRow>, StoreError> {
    let id = Uuid::parse_str(step).ok();
    Ok(sqlx::query_as(
        "SELECT id, task_id, name, handler_name, state, attempts, max_attempts, result, last_error,
                next_retry_at, created_at, started_at, completed_at
           FROM tasker.steps
          WHERE task_id = $1 AND (id = $2 OR ($2::uuid IS NULL AND name = $3))",
    )
    .bind(task_id)
    .bind(id)
    .bind(step)
    .fetch_optional(pool)
    .await?)
}

/// One row of a step's transition history.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = StepTransition)
)]
pub struct TransitionRow {
    pub id: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub event: String,
    pub reason: Option<String>,
    pub attempt: i32,
    pub processor_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A step's transitions, oldest first.
pub async fn transitions(pool: &PgPool, step_id: Uuid) -> Result<Vec<TransitionRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, from_state, to_state, event, reason, attempt, processor_id, created_at
           FROM tasker.step_transitions WHERE step_id = $1 ORDER BY id",
    )
    .bind(step_id)
    .fetch_all(pool)
    .await?)
}
