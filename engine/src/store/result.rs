//! The orchestrator's side of a step result: one transaction — one
//! autocommitted statement, `tasker.process_step_result` — records the
//! result, moves the step, enqueues the children that just became ready,
//! re-decides the task (finalizing it when nothing is left) and deletes the
//! result message. State, audit rows and messages commit together.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::evaluate::{announce, enqueue_steps, evaluate_task, lock_task};
use super::StoreError;
use crate::queue;
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

/// Processes one result message (read from [`queue::RESULTS_QUEUE`] as `msg_id`)
/// in one round trip: `tasker.process_step_result` (migration 5), one
/// autocommitted statement, locks the task and step, checks that this attempt
/// is still the current one and applies the decision made here (or records the
/// result as stale). The decision needs the step's retry policy only for a
/// failure; the policy never changes after creation, so it is read beforehand
/// without a lock.
pub async fn process(
    pool: &PgPool,
    msg_id: i64,
    msg: &StepResultMessage,
    processor_id: &str,
) -> Result<Processed, StoreError> {
    let decision = match &msg.outcome {
        Outcome::Success { .. } => Decision::success(),
        Outcome::Failure(_) => {
            let retry: Value =
                sqlx::query_scalar("SELECT retry FROM tasker.steps WHERE id = $1 AND task_id = $2")
                    .bind(msg.step_id)
                    .bind(msg.task_id)
                    .fetch_optional(pool)
                    .await?
                    .ok_or(StoreError::StepNotFound(msg.step_id))?;
            decide(msg, &retry)?
        }
    };
    let (outcome, result, error) = match &msg.outcome {
        Outcome::Success { result } => ("success", Some(result), None),
        Outcome::Failure(e) => (
            if e.retryable {
                "retryable_error"
            } else {
                "permanent_error"
            },
            None,
            Some(
                serde_json::json!({ "message": e.message, "kind": e.kind, "retryable": e.retryable,
                                     "retry_after_ms": e.retry_after_ms, "attempt": msg.attempt }),
            ),
        ),
    };
    let row: ProcessRow = sqlx::query_as(
        "SELECT step_found, is_current, namespace, step_state, step_attempts, task_before, task_state, enqueued
           FROM tasker.process_step_result(
                $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(msg_id)
    .bind(msg.task_id)
    .bind(msg.step_id)
    .bind(msg.attempt as i32)
    .bind(outcome)
    .bind(result)
    .bind(error)
    .bind(&msg.worker_id)
    .bind(msg.started_at)
    .bind(msg.finished_at)
    .bind(decision.to.as_str())
    .bind(decision.event)
    .bind(decision.reason.as_deref())
    .bind(decision.retry_at)
    .bind(processor_id)
    .fetch_one(pool)
    .await?;
    let (Some(true), Some(current), Some(namespace), Some(before), Some(after)) = (
        row.step_found,
        row.is_current,
        row.namespace,
        row.task_before,
        row.task_state,
    ) else {
        return Err(StoreError::StepNotFound(msg.step_id));
    };
    let before: TaskState = before.parse()?;
    let after: TaskState = after.parse()?;
    let enqueued = row.enqueued.unwrap_or(0);
    announce(pool, &namespace, msg.task_id, before, after, enqueued > 0);
    if !current {
        tracing::info!(
            step_id = %msg.step_id,
            attempt = msg.attempt,
            state = row.step_state.as_deref().unwrap_or("?"),
            attempts = row.step_attempts.unwrap_or(0),
            task = %before,
            "stale result recorded and ignored"
        );
        return Ok(Processed::Stale);
    }
    Ok(match decision.to {
        StepState::Complete => Processed::Completed {
            enqueued: enqueued.max(0) as usize,
            task: after,
        },
        StepState::WaitingForRetry => Processed::RetryScheduled {
            at: decision.retry_at.unwrap_or_else(Utc::now),
            task: after,
        },
        _ => Processed::Failed { task: after },
    })
}

/// What `tasker.process_step_result` returns (all NULL but `step_found` when the
/// step does not exist).
#[derive(sqlx::FromRow)]
struct ProcessRow {
    step_found: Option<bool>,
    is_current: Option<bool>,
    namespace: Option<String>,
    step_state: Option<String>,
    step_attempts: Option<i32>,
    task_before: Option<String>,
    task_state: Option<String>,
    enqueued: Option<i32>,
}

/// What to do with the result if it is the current attempt's.
struct Decision {
    /// The step's next state.
    to: StepState,
    event: &'static str,
    reason: Option<String>,
    retry_at: Option<DateTime<Utc>>,
}

impl Decision {
    fn success() -> Decision {
        Decision {
            to: StepState::Complete,
            event: "succeeded",
            reason: None,
            retry_at: None,
        }
    }
}

/// Success → complete; a retryable failure with attempts left → waiting for
/// retry at the step's own backoff (or the handler's retry-after, if later);
/// anything else → error.
fn decide(msg: &StepResultMessage, retry: &Value) -> Result<Decision, StoreError> {
    let Outcome::Failure(err) = &msg.outcome else {
        return Ok(Decision::success());
    };
    let policy: RetryPolicy =
        serde_json::from_value(retry.clone()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if err.retryable && policy.has_attempts_left(msg.attempt) {
        let delay = policy
            .delay_after(msg.attempt)
            .max(std::time::Duration::from_millis(
                err.retry_after_ms.unwrap_or(0),
            ));
        let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        return Ok(Decision {
            to: StepState::WaitingForRetry,
            event: "retryable_failure",
            reason: Some(format!("{}: {}", err.kind, err.message)),
            retry_at: Some(at),
        });
    }
    let reason = if err.retryable {
        format!("attempts exhausted ({}): {}", msg.attempt, err.message)
    } else {
        format!("{}: {}", err.kind, err.message)
    };
    Ok(Decision {
        to: StepState::Error,
        event: "failed",
        reason: Some(reason),
        retry_at: None,
    })
}

/// Reads a batch from the results queue for processing (a lease only: it
/// commits asynchronously, see `tasker.read_results`).
pub async fn read_batch(
    pool: &PgPool,
    lease_seconds: i32,
    qty: i32,
) -> Result<Vec<queue::Message>, StoreError> {
    Ok(
        sqlx::query_as("SELECT msg_id, read_ct, message FROM tasker.read_results($1, $2)")
            .bind(lease_seconds)
            .bind(qty)
            .fetch_all(pool)
            .await?,
    )
}

/// Counts one more parent done for each child of `step_id`; returns the
/// children that have no parent left to wait for and are still pending.
pub(crate) async fn release_children(
    conn: &mut PgConnection,
    step_id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar("SELECT tasker.release_children($1)")
        .bind(step_id)
        .fetch_one(&mut *conn)
        .await?)
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
    let n = enqueue_steps(
        &mut tx,
        &namespace,
        &due,
        StepState::WaitingForRetry,
        "retry_due",
        processor_id,
    )
    .await?;
    let after = evaluate_task(&mut tx, task_id, task_state, processor_id).await?;
    tx.commit().await?;
    announce(pool, &namespace, task_id, task_state, after, n > 0);
    Ok(n)
}
