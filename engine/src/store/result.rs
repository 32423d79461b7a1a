//! The orchestrator's side of a step result: one transaction records the
//! result, moves the step, enqueues the children that just became ready,
//! re-decides the task (finalizing it when nothing is left) and deletes the
//! result message. State, audit rows and messages commit together.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::evaluate::{announce, enqueue_steps, evaluate_task, lock_task};
use super::transition::{self, Cause};
use super::StoreError;
use crate::queue::{self, RESULTS_QUEUE};
use crate::state::{StepState, TaskState};
use crate::step::{Outcome, StepResultMessage};
use crate::template::RetryPolicy;

/// What processing one result did.
#[derive(Debug, Clone, PartialEq)]
pub enum Processed {
    /// The attempt was not the step's current one (or the step was cancelled or
    /// resolved meanwhile): recorded as stale, nothing else changed.
    Stale,
    /// Step complete; `enqueued` children became ready and were enqueued.
    Completed { enqueued: usize, task: TaskState },
    /// Step will be retried at `at`.
    RetryScheduled { at: DateTime<Utc>, task: TaskState },
    /// Step failed for good.
    Failed { task: TaskState },
}

impl Processed {
    /// The task's state after this result, when it changed anything.
    pub fn task_state(&self) -> Option<TaskState> {
        match self {
            Processed::Stale => None,
            Processed::Completed { task, .. }
            | Processed::RetryScheduled { task, .. }
            | Processed::Failed { task } => Some(*task),
        }
    }
}

/// Processes one result message (read from [`RESULTS_QUEUE`] as `msg_id`).
pub async fn process(
    pool: &PgPool,
    msg_id: i64,
    msg: &StepResultMessage,
    processor_id: &str,
) -> Result<Processed, StoreError> {
    let mut tx = pool.begin().await?;
    let (before, namespace) = lock_task(&mut tx, msg.task_id).await?;
    let processed = process_in(&mut tx, msg, before, &namespace, processor_id).await?;
    queue::delete(&mut tx, RESULTS_QUEUE, msg_id).await?;
    tx.commit().await?;
    let enqueued = matches!(processed, Processed::Completed { enqueued, .. } if enqueued > 0);
    announce(pool, &namespace, msg.task_id, before, processed.task_state().unwrap_or(before), enqueued);
    Ok(processed)
}

async fn process_in(
    conn: &mut PgConnection,
    msg: &StepResultMessage,
    task_state: TaskState,
    namespace: &str,
    processor_id: &str,
) -> Result<Processed, StoreError> {
    let step: Option<(String, i32, Value)> = sqlx::query_as(
        "SELECT state, attempts, retry FROM tasker.steps WHERE id = $1 AND task_id = $2 FOR UPDATE",
    )
    .bind(msg.step_id)
    .bind(msg.task_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (state, attempts, retry) = step.ok_or(StoreError::StepNotFound(msg.step_id))?;
    let state: StepState = state.parse()?;
    // Current: the attempt the step is waiting on, of a task still running.
    let current = state == StepState::EnqueuedForOrchestration
        && attempts == msg.attempt as i32
        && !task_state.is_terminal();
    record(conn, msg, !current).await?;
    if !current {
        tracing::info!(step_id = %msg.step_id, attempt = msg.attempt, %state, attempts, "stale result recorded and ignored");
        return Ok(Processed::Stale);
    }
    let cause = |event| Cause {
        event,
        reason: None,
        processor_id,
    };
    let processed = match &msg.outcome {
        Outcome::Success { result } => {
            sqlx::query("UPDATE tasker.steps SET result = $2, last_error = NULL WHERE id = $1")
                .bind(msg.step_id)
                .bind(result)
                .execute(&mut *conn)
                .await?;
            transition::step(
                conn,
                msg.step_id,
                state,
                StepState::Complete,
                cause("succeeded"),
            )
            .await?;
            let ready = release_children(conn, msg.step_id).await?;
            let enqueued = enqueue_steps(
                conn,
                &namespace,
                &ready,
                StepState::Pending,
                "dependencies_met",
                processor_id,
            )
            .await?;
            Processed::Completed {
                enqueued,
                task: task_state,
            }
        }
        Outcome::Failure(err) => {
            let policy: RetryPolicy =
                serde_json::from_value(retry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let error = json!({ "message": err.message, "kind": err.kind, "retryable": err.retryable, "attempt": msg.attempt });
            if err.retryable && policy.has_attempts_left(msg.attempt) {
                let delay = policy.delay_after(msg.attempt);
                let delay = delay.max(std::time::Duration::from_millis(
                    err.retry_after_ms.unwrap_or(0),
                ));
                let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                sqlx::query(
                    "UPDATE tasker.steps SET last_error = $2, next_retry_at = $3 WHERE id = $1",
                )
                .bind(msg.step_id)
                .bind(&error)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                let reason = format!("{}: {}", err.kind, err.message);
                transition::step(
                    conn,
                    msg.step_id,
                    state,
                    StepState::WaitingForRetry,
                    Cause {
                        event: "retryable_failure",
                        reason: Some(&reason),
                        processor_id,
                    },
                )
                .await?;
                Processed::RetryScheduled {
                    at,
                    task: task_state,
                }
            } else {
                sqlx::query("UPDATE tasker.steps SET last_error = $2 WHERE id = $1")
                    .bind(msg.step_id)
                    .bind(&error)
                    .execute(&mut *conn)
                    .await?;
                let reason = if err.retryable {
                    format!("attempts exhausted ({}): {}", msg.attempt, err.message)
                } else {
                    format!("{}: {}", err.kind, err.message)
                };
                transition::step(
                    conn,
                    msg.step_id,
                    state,
                    StepState::Error,
                    Cause {
                        event: "failed",
                        reason: Some(&reason),
                        processor_id,
                    },
                )
                .await?;
                Processed::Failed { task: task_state }
            }
        }
    };
    let task = evaluate_task(conn, msg.task_id, task_state, processor_id).await?;
    Ok(match processed {
        Processed::Completed { enqueued, .. } => Processed::Completed { enqueued, task },
        Processed::RetryScheduled { at, .. } => Processed::RetryScheduled { at, task },
        Processed::Failed { .. } => Processed::Failed { task },
        Processed::Stale => Processed::Stale,
    })
}

/// Appends the result to the attempt history.
async fn record(
    conn: &mut PgConnection,
    msg: &StepResultMessage,
    stale: bool,
) -> Result<(), StoreError> {
    let (outcome, result, error) = match &msg.outcome {
        Outcome::Success { result } => ("success", Some(result.clone()), None),
        Outcome::Failure(e) => (
            if e.retryable {
                "retryable_error"
            } else {
                "permanent_error"
            },
            None,
            Some(serde_json::to_value(e).map_err(|e| StoreError::Corrupt(e.to_string()))?),
        ),
    };
    sqlx::query(
        "INSERT INTO tasker.step_results (step_id, task_id, attempt, outcome, result, error, stale, worker_id, started_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(msg.step_id)
    .bind(msg.task_id)
    .bind(msg.attempt as i32)
    .bind(outcome)
    .bind(result)
    .bind(error)
    .bind(stale)
    .bind(&msg.worker_id)
    .bind(msg.started_at)
    .bind(msg.finished_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts one more parent done for each child of `step_id`; returns the
/// children that have no parent left to wait for and are still pending.
pub(crate) async fn release_children(
    conn: &mut PgConnection,
    step_id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar::<_, Option<Uuid>>(
        "UPDATE tasker.steps SET pending_parents = pending_parents - 1, updated_at = now()
          WHERE id IN (SELECT child_id FROM tasker.step_edges WHERE parent_id = $1)
      RETURNING CASE WHEN pending_parents = 0 AND state = 'pending' THEN id END",
    )
    .bind(step_id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .flatten()
    .collect())
}

/// Steps waiting for retry whose time has come, by task, oldest due first.
pub async fn due_retries(pool: &PgPool, limit: i64) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT task_id, id FROM tasker.steps
          WHERE state = 'waiting_for_retry' AND next_retry_at <= now()
          ORDER BY next_retry_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Enqueues the due retries of one task (one transaction, task lock held).
pub async fn enqueue_due_retries(
    pool: &PgPool,
    task_id: Uuid,
    processor_id: &str,
) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    let (task_state, namespace) = lock_task(&mut tx, task_id).await?;
    if task_state.is_terminal() {
        tx.rollback().await?;
        return Ok(0);
    }
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tasker.steps WHERE task_id = $1 AND state = 'waiting_for_retry' AND next_retry_at <= now()",
    )
    .bind(task_id)
    .fetch_all(&mut *tx)
    .await?;
        let n = enqueue_steps(&mut tx, &namespace, &due, StepState::WaitingForRetry, "retry_due", processor_id).await?;
    let after = evaluate_task(&mut tx, task_id, task_state, processor_id).await?;
    tx.commit().await?;
    announce(pool, &namespace, task_id, task_state, after, n > 0);
    Ok(n)
}
