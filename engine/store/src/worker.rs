//! The worker registry (`tasker.workers`): every worker host registers at
//! start, refreshes its row with each heartbeat and stamps `stopped_at` at a
//! clean stop. A worker whose heartbeat is older than three of its intervals
//! is **gone**. The registry answers "who serves this step?": for operators
//! (`GET /v1/workers`, `tasker worker list`), for template registration and
//! task creation (steps no live worker serves), and for the orchestrator's
//! sweep that ends steps no live worker has served for too long.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;
use crate::queue;
use tasker_model::change::Changed;
use tasker_model::step::{Outcome, StepResultMessage};

/// Heartbeats a worker may miss before it counts as gone.
pub const MISSED_HEARTBEATS: i32 = 3;

/// How long rows of stopped and gone workers are kept.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What a worker host says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Unique per process start.
    pub id: String,
    pub host: String,
    pub pid: i32,
    /// `rust`, `c`, `python` or `ruby`.
    pub runtime: String,
    /// The runtime's version (`3.11.7`, `1.95.0`, ...).
    pub runtime_version: String,
    pub tasker_version: String,
    pub namespaces: Vec<String>,
    /// Every pool (step queue) it reads, its namespaces' included.
    pub pools: Vec<String>,
    /// Handler names registered in it.
    pub handlers: Vec<String>,
    /// Whether it also runs uploaded WASM components.
    pub runs_components: bool,
    pub concurrency: i32,
    pub heartbeat_seconds: i32,
}

/// A worker as the registry shows it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = Worker, description = "A worker host in the registry.")
)]
pub struct WorkerRow {
    pub id: String,
    /// `live`, `stopped` (a clean stop) or `gone` (missed three heartbeats).
    pub status: String,
    pub host: String,
    pub pid: i32,
    pub runtime: String,
    pub runtime_version: String,
    pub tasker_version: String,
    pub namespaces: Vec<String>,
    pub pools: Vec<String>,
    pub handlers: Vec<String>,
    pub runs_components: bool,
    pub concurrency: i32,
    /// Steps running at its last heartbeat.
    pub in_flight: i32,
    /// Attempts it finished with success / failure since it started.
    pub steps_succeeded: i64,
    pub steps_failed: i64,
    pub heartbeat_seconds: i32,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// A worker's counters at a heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub in_flight: i32,
    pub steps_succeeded: i64,
    pub steps_failed: i64,
}

/// Records `worker` as live (a restart under the same id starts afresh).
pub async fn register(pool: &PgPool, worker: &WorkerInfo) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tasker.workers (id, host, pid, runtime, runtime_version, tasker_version,
                                     namespaces, pools, handlers, runs_components, concurrency,
                                     heartbeat_seconds)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (id) DO UPDATE
            SET host = EXCLUDED.host, pid = EXCLUDED.pid, runtime = EXCLUDED.runtime,
                runtime_version = EXCLUDED.runtime_version,
                tasker_version = EXCLUDED.tasker_version, namespaces = EXCLUDED.namespaces,
                pools = EXCLUDED.pools, handlers = EXCLUDED.handlers,
                runs_components = EXCLUDED.runs_components, concurrency = EXCLUDED.concurrency,
                heartbeat_seconds = EXCLUDED.heartbeat_seconds, in_flight = 0,
                steps_succeeded = 0, steps_failed = 0, started_at = now(),
                last_heartbeat_at = now(), stopped_at = NULL",
    )
    .bind(&worker.id)
    .bind(&worker.host)
    .bind(worker.pid)
    .bind(&worker.runtime)
    .bind(&worker.runtime_version)
    .bind(&worker.tasker_version)
    .bind(&worker.namespaces)
    .bind(&worker.pools)
    .bind(&worker.handlers)
    .bind(worker.runs_components)
    .bind(worker.concurrency)
    .bind(worker.heartbeat_seconds)
    .execute(pool)
    .await?;
    Ok(())
}

/// Refreshes a worker's row with its `load`; false when the row is missing
/// (deleted while the worker was away): the caller registers again.
pub async fn heartbeat(pool: &PgPool, id: &str, load: Load) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE tasker.workers
            SET last_heartbeat_at = now(), in_flight = $2, steps_succeeded = $3,
                steps_failed = $4, stopped_at = NULL
          WHERE id = $1",
    )
    .bind(id)
    .bind(load.in_flight)
    .bind(load.steps_succeeded)
    .bind(load.steps_failed)
    .execute(pool)
    .await?;
    Ok(n.rows_affected() == 1)
}

/// Marks a worker stopped (its clean stop).
pub async fn deregister(pool: &PgPool, id: &str, load: Load) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tasker.workers
            SET stopped_at = now(), in_flight = 0, steps_succeeded = $2, steps_failed = $3
          WHERE id = $1",
    )
    .bind(id)
    .bind(load.steps_succeeded)
    .bind(load.steps_failed)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether a `tasker.workers` row `w` is live: not stopped, heartbeat recent.
const LIVE: &str = "(w.stopped_at IS NULL
     AND w.last_heartbeat_at > now() - make_interval(secs => 3 * w.heartbeat_seconds))";

/// Whether worker `w` runs handler `{handler}` (a column or parameter).
fn runs(handler: &str) -> String {
    format!(
        "({handler} = ANY (w.handlers)
          OR (w.runs_components AND EXISTS (SELECT 1 FROM tasker.handler_components c
                                             WHERE c.name = {handler})))"
    )
}

/// The registry: live workers first, then the others, each by runtime and id.
/// `all: false` leaves out stopped and gone workers.
pub async fn list(pool: &PgPool, all: bool) -> Result<Vec<WorkerRow>, StoreError> {
    let sql = format!(
        "SELECT w.id,
                CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
                     WHEN {LIVE} THEN 'live' ELSE 'gone' END AS status,
                w.host, w.pid, w.runtime, w.runtime_version, w.tasker_version, w.namespaces,
                w.pools, w.handlers, w.runs_components, w.concurrency, w.in_flight,
                w.steps_succeeded, w.steps_failed, w.heartbeat_seconds, w.started_at,
                w.last_heartbeat_at, w.stopped_at
           FROM tasker.workers w
          WHERE $1 OR {LIVE}
          ORDER BY {LIVE} DESC, w.runtime, w.id"
    );
    Ok(sqlx::query_as(&sql).bind(all).fetch_all(pool).await?)
}

/// A step no live worker serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(description = "A step whose handler no live worker of its pool serves.")
)]
pub struct UnservedStep {
    pub step: String,
    pub handler: String,
    pub pool: String,
}

/// The steps of `template` whose handler no live worker of their pool runs
/// (wait steps run none: never unserved).
pub async fn unserved(
    pool: &PgPool,
    template: &tasker_model::template::Template,
) -> Result<Vec<UnservedStep>, StoreError> {
    let run: Vec<_> = template.steps.iter().filter(|s| s.wait.is_none()).collect();
    let steps: Vec<&str> = run.iter().map(|s| s.name.as_str()).collect();
    let handlers: Vec<&str> = run.iter().map(|s| s.handler.name.as_str()).collect();
    let pools: Vec<&str> = run.iter().map(|s| template.pool_of(s)).collect();
    let sql = format!(
        "SELECT x.step, x.handler, x.pool
           FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS x(step, handler, pool, ord)
          WHERE NOT EXISTS (SELECT 1 FROM tasker.workers w
                             WHERE x.pool = ANY (w.pools) AND {LIVE} AND {})
          ORDER BY x.ord",
        runs("x.handler")
    );
    let rows: Vec<(String, String, String)> = sqlx::query_as(&sql)
        .bind(&steps)
        .bind(&handlers)
        .bind(&pools)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(step, handler, pool)| UnservedStep {
            step,
            handler,
            pool,
        })
        .collect())
}

/// Ends, with error kind `no_worker` (`tasker_model::step::kind::NO_WORKER`), the enqueued steps that no live
/// worker of their pool has run for `after`: they waited at least that long
/// (their message visible that long: a delayed start's wait does not count),
/// and no worker that runs their handler in their pool heartbeated within it.
/// Each gets a permanent failure result, as a worker would report one
/// (enqueued → enqueued_for_orchestration, the step message deleted, the
/// result sent, in one statement per pool); the orchestrator applies it like
/// any other. Returns how many were ended and what changed.
pub async fn fail_unserved(
    pool: &PgPool,
    after: Duration,
    processor_id: &str,
) -> Result<(usize, Changed), StoreError> {
    let pools: Vec<String> = sqlx::query_scalar("SELECT name FROM tasker.pools ORDER BY name")
        .fetch_all(pool)
        .await?;
    let mut ended = 0;
    for pool_name in pools {
        ended += fail_unserved_in(pool, &pool_name, after, processor_id).await?;
    }
    let changed = match ended {
        0 => Changed::none(),
        _ => Changed::queue(queue::RESULTS_QUEUE),
    };
    Ok((ended, changed))
}

async fn fail_unserved_in(
    pool: &PgPool,
    pool_name: &str,
    after: Duration,
    processor_id: &str,
) -> Result<usize, StoreError> {
    let q = queue::step_queue(pool_name)?;
    // The oldest messages first; a message leased by a worker is being run,
    // one not visible yet (a delayed start, `vt` = its `run_at`) waits: a
    // step is unserved once its message has been visible for `after`.
    let find = queue::substitute(
        &format!(
            "SELECT m.msg_id, s.id, s.task_id, s.attempts, s.handler_name
               FROM {{steps}} m
               JOIN tasker.steps s
                 ON s.id = CASE WHEN m.message->>'step_id' ~ '^[0-9a-f-]{{36}}$'
                                THEN (m.message->>'step_id')::uuid END
              WHERE m.enqueued_at < now() - make_interval(secs => $1)
                AND m.vt <= clock_timestamp() - make_interval(secs => $1)
                AND s.state = 'enqueued' AND s.updated_at < now() - make_interval(secs => $1)
                AND NOT EXISTS (SELECT 1 FROM tasker.workers w
                                 WHERE $2 = ANY (w.pools) AND {}
                                   AND w.last_heartbeat_at > now() - make_interval(secs => $1))
              ORDER BY m.msg_id LIMIT 100",
            runs("s.handler_name")
        ),
        &q,
    )?;
    let found: Vec<(i64, Uuid, Uuid, i32, String)> = sqlx::query_as(&find)
        .bind(after.as_secs_f64())
        .bind(pool_name)
        .fetch_all(pool)
        .await?;
    if found.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let mut msg_ids = Vec::with_capacity(found.len());
    let mut step_ids = Vec::with_capacity(found.len());
    let mut attempts = Vec::with_capacity(found.len());
    let mut bodies = Vec::with_capacity(found.len());
    for (msg_id, step_id, task_id, attempt, handler) in found {
        let message = format!(
            "no live worker runs handler '{handler}' in pool '{pool_name}' \
             (waited {}s; start a worker that serves it, then retry the step)",
            after.as_secs()
        );
        let result = StepResultMessage {
            step_id,
            task_id,
            attempt: attempt.max(0) as u32,
            outcome: Outcome::failure(tasker_model::step::kind::NO_WORKER, message, false),
            worker_id: processor_id.to_string(),
            started_at: now,
            finished_at: now,
            traceparent: None,
        };
        msg_ids.push(msg_id);
        step_ids.push(step_id);
        attempts.push(attempt);
        bodies.push(serde_json::to_value(&result).map_err(|e| StoreError::Corrupt(e.to_string()))?);
    }
    let end = queue::substitute(
        "WITH input AS (
              SELECT * FROM unnest($1::uuid[], $2::int[], $3::jsonb[], $4::bigint[])
                  AS i(step_id, attempt, body, msg_id)),
          moved AS (
              UPDATE tasker.steps s SET state = 'enqueued_for_orchestration', updated_at = now()
                FROM input i
               WHERE s.id = i.step_id AND s.state = 'enqueued' AND s.attempts = i.attempt
           RETURNING s.id, s.task_id, s.attempts),
          audit AS (
              INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event,
                                                   reason, attempt, processor_id)
              SELECT id, task_id, 'enqueued', 'enqueued_for_orchestration', 'no_worker',
                     'no live worker serves its handler in its pool', attempts, $5
                FROM moved),
          sent AS (
              INSERT INTO {results} (vt, message)
              SELECT clock_timestamp(), i.body FROM input i JOIN moved m ON m.id = i.step_id),
          deleted AS (
              DELETE FROM {steps} q USING input i, moved m
               WHERE q.msg_id = i.msg_id AND m.id = i.step_id)
          SELECT count(*) FROM moved",
        &q,
    )?;
    let n: i64 = sqlx::query_scalar(&end)
        .bind(&step_ids)
        .bind(&attempts)
        .bind(&bodies)
        .bind(&msg_ids)
        .bind(processor_id)
        .fetch_one(pool)
        .await?;
    if n > 0 {
        tracing::warn!(
            pool = pool_name,
            steps = n,
            "ended steps no live worker served"
        );
    }
    Ok(n.max(0) as usize)
}

/// Deletes the rows of workers stopped or gone for longer than [`FORGET_AFTER`].
pub async fn forget_old(pool: &PgPool) -> Result<u64, StoreError> {
    let n = sqlx::query(
        "DELETE FROM tasker.workers
          WHERE coalesce(stopped_at, last_heartbeat_at) < now() - make_interval(secs => $1)",
    )
    .bind(FORGET_AFTER.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(n.rows_affected())
}
