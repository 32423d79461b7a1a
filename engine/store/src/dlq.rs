//! The dead-letter queue of steps (`tasker.step_dlq`): every step that ended
//! in `error` — attempts exhausted, a permanent failure, no live worker to run
//! it — with what an operator needs to decide: its task, template, handler,
//! pool, attempts, last error and input. A trigger keeps the table in step
//! with the steps (`migrations/functions/track_step_dlq.sql`): an operator's
//! retry (`operator::retry_step`, fresh attempts), resolve or complete takes
//! the step out; [`discard`] takes it out and fails its task for good.
//! Unreadable queue messages are another list ([`crate::archive`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::evaluate::lock_task;
use super::StoreError;
use crate::operator::{self, Actor};
use tasker_model::change::Changed;
use tasker_model::state::TaskState;

/// A step in the dead-letter queue.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = DeadStep, description = "A step that ended in error, waiting for an operator.")
)]
pub struct DeadStep {
    pub step_id: Uuid,
    pub step: String,
    pub task_id: Uuid,
    pub task_state: String,
    pub namespace: String,
    pub template: String,
    pub template_version: String,
    pub handler: String,
    pub pool: String,
    /// Starts the step had: its handler's tries plus `recoveries`.
    pub attempts: i32,
    /// Starts that took over from a lost worker (lease expired).
    pub recoveries: i32,
    pub max_attempts: i32,
    /// The error that ended it (`kind`, `message`, ...).
    pub last_error: Option<Value>,
    /// The task's input.
    pub input: Value,
    pub failed_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT d.step_id, s.name AS step, d.task_id, t.state AS task_state,
        d.namespace, tp.name AS template, tp.version AS template_version,
        s.handler_name AS handler, s.pool, s.attempts, s.recoveries, s.max_attempts, s.last_error,
        t.context AS input, d.failed_at
   FROM tasker.step_dlq d
   JOIN tasker.steps s ON s.id = d.step_id
   JOIN tasker.tasks t ON t.id = d.task_id
   JOIN tasker.templates tp ON tp.id = t.template_id";

/// Dead steps by step id (UUIDv7: oldest step first): of one of
/// `namespaces` (all when `None`), after the step id `after` (the cursor),
/// `limit` at most.
pub async fn list(
    pool: &PgPool,
    namespaces: Option<&[String]>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DeadStep>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "{SELECT}
          WHERE ($1::text[] IS NULL OR d.namespace = ANY($1))
            AND ($2::uuid IS NULL OR d.step_id > $2)
          ORDER BY d.step_id LIMIT $3"
    ))
    .bind(namespaces)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// One dead step, if it is in the queue.
pub async fn get(pool: &PgPool, step_id: Uuid) -> Result<Option<DeadStep>, StoreError> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE d.step_id = $1"))
        .bind(step_id)
        .fetch_optional(pool)
        .await?)
}

/// Dead steps per namespace (the `tasker_dlq_steps` gauge).
pub async fn sizes(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT namespace, count(*) FROM tasker.step_dlq GROUP BY namespace ORDER BY namespace",
    )
    .fetch_all(pool)
    .await?)
}

/// Gives a dead step up: it leaves the queue, and its task, if still waiting,
/// ends in `error` (its unfinished steps cancelled). Returns the task's state
/// and what changed; [`StoreError::StepNotFound`] when the step is not in the
/// queue.
pub async fn discard(
    pool: &PgPool,
    step_id: Uuid,
    actor: Actor<'_>,
) -> Result<(TaskState, Changed), StoreError> {
    let task_id: Option<Uuid> =
        sqlx::query_scalar("SELECT task_id FROM tasker.step_dlq WHERE step_id = $1")
            .bind(step_id)
            .fetch_optional(pool)
            .await?;
    let task_id = task_id.ok_or(StoreError::StepNotFound(step_id))?;
    let mut tx = pool.begin().await?;
    let state = lock_task(&mut tx, task_id).await?;
    let gone = sqlx::query("DELETE FROM tasker.step_dlq WHERE step_id = $1")
        .bind(step_id)
        .execute(&mut *tx)
        .await?;
    if gone.rows_affected() == 0 {
        return Err(StoreError::StepNotFound(step_id));
    }
    if state.is_terminal() {
        tx.commit().await?;
        return Ok((state, Changed::none()));
    }
    let (to, changed) = operator::fail_task(&mut tx, task_id, state, "discard", actor).await?;
    tx.commit().await?;
    Ok((to, changed))
}
