//! The orchestrator's side of a step result: one transaction records the
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

/// Processes one result message (read from [`queue::RESULTS_QUEUE`] as `msg_id`):
/// one transaction of two statements — lock and read the task and step, then
/// `tasker.apply_step_result` with the decision made here.
pub async fn process(
    pool: &PgPool,
    msg_id: i64,
    msg: &StepResultMessage,
    processor_id: &str,
) -> Result<Processed, StoreError> {
    let mut tx = pool.begin().await?;
    // Lock order everywhere: task row first, then step rows.
    let row: Option<(String, String, String, i32, Value)> = sqlx::query_as(
        "SELECT t.state, t.namespace, s.state, s.attempts, s.retry
           FROM tasker.tasks t JOIN tasker.steps s ON s.task_id = t.id
          WHERE t.id = $1 AND s.id = $2
            FOR UPDATE OF t, s",
    )
    .bind(msg.task_id)
    .bind(msg.step_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (task_state, namespace, step_state, attempts, retry) =
        row.ok_or(StoreError::StepNotFound(msg.step_id))?;
    let before: TaskState = task_state.parse()?;
    let step_state: StepState = step_state.parse()?;
    // Current: the attempt the step is waiting on, of a task still running.
    let current = step_state == StepState::EnqueuedForOrchestration
        && attempts == msg.attempt as i32
        && !before.is_terminal();
    let decision = if current {
        decide(msg, &retry)?
    } else {
        Decision::stale()
    };
    let (outcome, result, error) = match &msg.outcome {
        Outcome::Success { result } => ("success", Some(result.clone()), None),
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
    let (after, enqueued): (String, i32) = sqlx::query_as(
        "SELECT task_state, enqueued FROM tasker.apply_step_result(
             $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(msg_id)
    .bind(msg.task_id)
    .bind(msg.step_id)
    .bind(queue::step_queue(&namespace)?)
    .bind(before.as_str())
    .bind(msg.attempt as i32)
    .bind(outcome)
    .bind(result)
    .bind(error)
    .bind(&msg.worker_id)
    .bind(msg.started_at)
    .bind(msg.finished_at)
    .bind(decision.to.map(StepState::as_str))
    .bind(decision.event)
    .bind(decision.reason.as_deref())
    .bind(decision.retry_at)
    .bind(processor_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let after: TaskState = after.parse()?;
    announce(pool, &namespace, msg.task_id, before, after, enqueued > 0);
    let processed = match decision.to {
        None => {
            tracing::info!(step_id = %msg.step_id, attempt = msg.attempt, state = %step_state, attempts, "stale result recorded and ignored");
            Processed::Stale
        }
        Some(StepState::Complete) => Processed::Completed {
            enqueued: enqueued.max(0) as usize,
            task: after,
        },
        Some(StepState::WaitingForRetry) => Processed::RetryScheduled {
            at: decision.retry_at.unwrap_or_else(Utc::now),
            task: after,
        },
        Some(_) => Processed::Failed { task: after },
    };
    Ok(processed)
}

/// What to do with a current result.
struct Decision {
    /// The step's next state; `None` for a stale result.
    to: Option<StepState>,
    event: &'static str,
    reason: Option<String>,
    retry_at: Option<DateTime<Utc>>,
}

impl Decision {
    fn stale() -> Decision {
        Decision {
            to: None,
            event: "stale",
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
        return Ok(Decision {
            to: Some(StepState::Complete),
            event: "succeeded",
            reason: None,
            retry_at: None,
        });
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
            to: Some(StepState::WaitingForRetry),
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
        to: Some(StepState::Error),
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
