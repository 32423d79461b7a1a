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
use crate::result::{processed, Decision, Processed};
use tasker_model::change::Changed;
use tasker_model::state::TaskState;
use tasker_model::step::{StepContext, StepResultMessage};

/// Claims a batch: [`claim_batch`]'s statement.
const CLAIM_STEPS: &str = crate::sql::body(include_str!("sql/claim_steps.sql"));
/// Extends a lease: [`heartbeat`]'s statement.
const HEARTBEAT: &str = crate::sql::body(include_str!("sql/heartbeat.sql"));

/// Which steps a worker can run, for [`claim_batch`]: messages of other steps
/// are left in the queue for a worker that can.
#[derive(Debug, Clone, Copy)]
pub struct Serves<'a> {
    /// The handler names registered in the worker; `None`: any handler.
    pub handlers: Option<&'a [String]>,
    /// Whether it also runs uploaded WASM components (any name that has one).
    pub components: bool,
}

impl Serves<'_> {
    /// A worker that runs every step it reads.
    pub const ANY: Serves<'static> = Serves {
        handlers: None,
        components: true,
    };
}

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
    recoveries: Option<i32>,
    /// The message's trace (its PGMQ header), else its task's.
    traceparent: Option<String>,
    max_attempts: Option<i32>,
    timeout_seconds: Option<i32>,
    context: Option<Value>,
    namespace: Option<String>,
    template_name: Option<String>,
    parent_results: Option<Value>,
    /// Set for a message a rate limit deferred: the limit, and in how many
    /// seconds its bucket should admit it.
    deferred_limit: Option<String>,
    deferred_seconds: Option<f64>,
}

/// A message a rate limit deferred in a claim: hidden until its bucket
/// should admit it, no read counted, no attempt spent (`docs/flow-control.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct Deferred {
    pub msg_id: i64,
    /// The limit whose bucket was empty.
    pub limit: String,
    /// When the message is visible again, in seconds from the claim.
    pub seconds: f64,
}

/// What one claim read: the messages to run (or delete), and the ones rate
/// limits deferred.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub claimed: Vec<Claimed>,
    pub deferred: Vec<Deferred>,
}

impl Batch {
    /// Messages read: claimed and deferred.
    pub fn read(&self) -> usize {
        self.claimed.len() + self.deferred.len()
    }

    /// How soon the first deferred message is visible again (a worker reads
    /// again then); `None` when nothing was deferred.
    pub fn next_in(&self) -> Option<std::time::Duration> {
        self.deferred
            .iter()
            .map(|d| d.seconds)
            .min_by(f64::total_cmp)
            .map(|s| std::time::Duration::from_secs_f64(s.clamp(0.0, 3600.0)))
    }
}

/// Reads up to `qty` messages from `queue` with a lease of `lease_seconds`,
/// and claims their steps (→ in_progress, attempt + 1, audited), returning
/// each step's full context: one statement (`sql/claim_steps.sql`), PGMQ's
/// read on the queue's table (static SQL per queue, prepared once per
/// connection) joined to the claim.
///
/// The read and the step lock name their rows by primary key (`= ANY
/// (ARRAY(...))`), so the plan stays two index lookups whatever the table
/// statistics say (a join was planned as a hash join over every step).
///
/// Only messages of steps the worker `serves` are read: a step whose handler
/// it lacks stays visible for another worker, with no attempt spent.
///
/// The claim is lease bookkeeping and commits asynchronously: a crash can only
/// lose the lease, which makes the message visible again (at-least-once). One
/// statement sees one snapshot; the message and its step's `enqueued` state
/// are committed by the same transaction, so it sees both or neither.
///
/// Messages of rate-limited steps their limit does not admit yet are
/// deferred, not returned: [`claim_with_deferrals`] returns them too.
pub async fn claim_batch<'c>(
    db: impl sqlx::PgExecutor<'c>,
    queue: &str,
    lease_seconds: i32,
    qty: i32,
    processor_id: &str,
    serves: Serves<'_>,
) -> Result<Vec<Claimed>, StoreError> {
    claim_with_deferrals(db, queue, lease_seconds, qty, processor_id, serves)
        .await
        .map(|b| b.claimed)
}

/// [`claim_batch`], also returning the messages rate limits deferred (the
/// claim hid them until their limit should admit them: a worker reads again
/// then, see [`Batch::next_in`]).
pub async fn claim_with_deferrals<'c>(
    db: impl sqlx::PgExecutor<'c>,
    queue: &str,
    lease_seconds: i32,
    qty: i32,
    processor_id: &str,
    serves: Serves<'_>,
) -> Result<Batch, StoreError> {
    let sql = crate::queue::substitute(CLAIM_STEPS, queue)?;
    let rows: Vec<ClaimRow> = sqlx::query_as(&sql)
        .bind(qty)
        .bind(lease_seconds)
        .bind(processor_id)
        .bind(serves.handlers)
        .bind(serves.components)
        .fetch_all(db)
        .await?;
    let mut batch = Batch::default();
    for mut r in rows {
        match r.deferred_limit.take() {
            Some(limit) => batch.deferred.push(Deferred {
                msg_id: r.msg_id,
                limit,
                seconds: r.deferred_seconds.unwrap_or(0.0),
            }),
            None => batch.claimed.push(Claimed::from(r)),
        }
    }
    Ok(batch)
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
                    recoveries: r.recoveries.unwrap_or(0).max(0) as u32,
                    traceparent: r.traceparent,
                    log: Default::default(),
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
    report_statement(queue, outcomes, processor_id, false)?
        .execute(&mut *conn)
        .await?;
    Ok(Changed::queue(RESULTS_QUEUE))
}

/// `tasker.report_outcomes` (`migrations/functions/`) for `outcomes` on
/// `queue`'s steps, applying the successes when `apply`.
fn report_statement(
    queue: &str,
    outcomes: &[(i64, StepResultMessage)],
    processor_id: &str,
    apply: bool,
) -> Result<sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>, StoreError> {
    crate::queue::table(queue)?;
    let n = outcomes.len();
    let (mut steps, mut attempts, mut bodies, mut msg_ids) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (msg_id, r) in outcomes {
        steps.push(r.step_id);
        attempts.push(r.attempt as i32);
        bodies.push(serde_json::to_value(r).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        msg_ids.push(*msg_id);
    }
    Ok(
        sqlx::query("SELECT * FROM tasker.report_outcomes($1, $2, $3, $4, $5, $6, $7)")
            .bind(queue.to_string())
            .bind(steps)
            .bind(attempts)
            .bind(bodies)
            .bind(msg_ids)
            .bind(processor_id.to_string())
            .bind(apply),
    )
}

/// [`report_batch_on`], and the successes applied at once, in the same
/// statement and commit: the worker's hot path (`[worker] apply_successes`).
/// `tasker.report_outcomes` locks the tasks of the successes first (id
/// order, the orchestrator's order: task, then steps), moves the steps as
/// usual, then applies the successes as the orchestrator's take would
/// (`tasker.apply_successes`: the step completes, its ready children are
/// enqueued, the task is re-decided); only what it did not apply (failures,
/// and every outcome when applying them as a set failed) is sent to the
/// results queue for an orchestrator, and the returned [`Changed`] then names
/// that queue. Returns what changed and, for each success applied here, its
/// message and what applying it did.
pub async fn report_and_apply_on(
    conn: &mut sqlx::PgConnection,
    queue: &str,
    outcomes: &[(i64, StepResultMessage)],
    processor_id: &str,
) -> Result<(Changed, Vec<(StepResultMessage, Processed)>), StoreError> {
    use sqlx::FromRow;
    if outcomes.is_empty() {
        return Ok((Changed::none(), Vec::new()));
    }
    let rows = report_statement(queue, outcomes, processor_id, true)?
        .fetch_all(&mut *conn)
        .await?;
    let mut changed = Changed::none();
    let mut applied = Vec::with_capacity(rows.len());
    for row in &rows {
        let row = crate::take::TakenRow::from_row(row)?;
        if !row.applied {
            continue;
        }
        let msg = serde_json::from_value::<StepResultMessage>(row.message)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let done = processed(&msg, &Decision::success(), row.process, &mut changed)?;
        applied.push((msg, done));
    }
    // Whatever was not applied here is in the results queue.
    if applied.len() < outcomes.len() {
        changed.merge(Changed::queue(RESULTS_QUEUE));
    }
    Ok((changed, applied))
}

/// Deletes a step message whose step cannot run (already finished elsewhere).
pub async fn discard(pool: &PgPool, queue: &str, msg_id: i64) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    crate::queue::delete(&mut conn, queue, msg_id).await?;
    Ok(())
}

/// Hands a claimed step back without spending its attempt: a worker that
/// found it cannot run the step after all (its handler went away between the
/// claim and the run) returns it to `enqueued`, with `attempts` as before the
/// claim, audited as `handed_back`, and makes its message visible again after
/// `delay` for another worker. False when the attempt is no longer current.
pub async fn hand_back(
    pool: &PgPool,
    queue: &str,
    msg_id: i64,
    step_id: Uuid,
    attempt: u32,
    delay: std::time::Duration,
    processor_id: &str,
) -> Result<bool, StoreError> {
    let sql = crate::queue::substitute(
        "WITH back AS (
              UPDATE tasker.steps SET state = 'enqueued', attempts = attempts - 1, updated_at = now()
               WHERE id = $1 AND state = 'in_progress' AND attempts = $2
           RETURNING id, task_id, attempts),
          audit AS (
              INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event,
                                                   reason, attempt, processor_id)
              SELECT id, task_id, 'in_progress', 'enqueued', 'handed_back',
                     'the worker cannot run its handler', attempts, $5 FROM back),
          visible AS (
              UPDATE {steps} SET vt = clock_timestamp() + make_interval(secs => $4)
               WHERE msg_id = $3 AND EXISTS (SELECT 1 FROM back))
          SELECT count(*) FROM back",
        queue,
    )?;
    let n: i64 = sqlx::query_scalar(&sql)
        .bind(step_id)
        .bind(attempt as i32)
        .bind(msg_id)
        .bind(delay.as_secs_f64())
        .bind(processor_id)
        .fetch_one(pool)
        .await?;
    Ok(n == 1)
}

/// The attempt a heartbeat is for: where its message is and which attempt of
/// which step it runs.
#[derive(Debug, Clone, Copy)]
pub struct Running<'a> {
    pub queue: &'a str,
    pub msg_id: i64,
    pub task_id: Uuid,
    pub step_id: Uuid,
    pub attempt: u32,
}

/// Extends the lease of a running attempt and says whether to go on: false
/// once the task was cancelled or resolved, or the attempt is no longer the
/// step's current one (another worker took the step over after the lease ran
/// out) — then nothing is extended and the handler should stop.
pub async fn heartbeat(
    pool: &PgPool,
    running: Running<'_>,
    lease_seconds: i32,
) -> Result<bool, StoreError> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| HEARTBEAT.replace("{terminal_states}", &TaskState::terminal_sql_list()));
    let live: Option<bool> = sqlx::query_scalar(SQL.as_str())
        .bind(running.queue)
        .bind(running.msg_id)
        .bind(lease_seconds)
        .bind(running.task_id)
        .bind(running.step_id)
        .bind(running.attempt as i32)
        .fetch_optional(pool)
        .await?;
    Ok(live.unwrap_or(false))
}

/// A step of `task_id` by id (when `step` parses as a UUID) or by name.
pub async fn find(pool: &PgPool, task_id: Uuid, step: &str) -> Result<Option<StepRow>, StoreError> {
    let id = Uuid::parse_str(step).ok();
    Ok(sqlx::query_as(
        "SELECT id, task_id, name, handler_name, state, attempts, recoveries, max_attempts, result, last_error,
                next_retry_at, created_at, started_at, completed_at, wait_signal,
                CASE WHEN state = 'waiting'
                     THEN started_at + make_interval(secs => wait_seconds) END AS wait_until
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
