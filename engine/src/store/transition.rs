//! Persisting a state change: a compare-and-set on the row's current state
//! plus an audit row, in one statement. Of two concurrent identical
//! transitions exactly one matches the `WHERE state = from`; the other gets
//! [`TransitionError::StateChanged`].
//!
//! No NOTIFY happens inside these transactions (a notifying commit holds a
//! cluster-wide lock while it flushes); callers send `wake::task_event` after
//! commit instead.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::state::{check_step, check_task, StepState, TaskState, TransitionError};

/// Who asked for a transition and why: written to the audit row.
#[derive(Debug, Clone, Copy)]
pub struct Cause<'a> {
    pub event: &'a str,
    pub reason: Option<&'a str>,
    pub processor_id: &'a str,
}

/// Errors from persisting a transition.
#[derive(Debug, thiserror::Error)]
pub enum StoreTransitionError {
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("{machine} {id} not found")]
    NotFound { machine: &'static str, id: Uuid },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Moves a task `from -> to` if it is still in `from`.
pub async fn task(
    conn: &mut PgConnection,
    id: Uuid,
    from: TaskState,
    to: TaskState,
    cause: Cause<'_>,
) -> Result<(), StoreTransitionError> {
    check_task(from, to)?;
    let moved: Option<i64> = sqlx::query_scalar(
        "WITH moved AS (
             UPDATE tasker.tasks
                SET state = $3, updated_at = now(),
                    completed_at = CASE WHEN $7 THEN now() ELSE completed_at END
              WHERE id = $1 AND state = $2
          RETURNING id)
         INSERT INTO tasker.task_transitions (task_id, from_state, to_state, event, reason, processor_id)
         SELECT id, $2, $3, $4, $5, $6 FROM moved
         RETURNING id",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(cause.event)
    .bind(cause.reason)
    .bind(cause.processor_id)
    .bind(to.is_terminal())
    .fetch_optional(&mut *conn)
    .await?;
    if moved.is_some() {
        return Ok(());
    }
    let found: Option<String> = sqlx::query_scalar("SELECT state FROM tasker.tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match found {
        None => Err(StoreTransitionError::NotFound {
            machine: "task",
            id,
        }),
        Some(found) => Err(TransitionError::StateChanged {
            machine: "task",
            id,
            expected: from.to_string(),
            found,
        }
        .into()),
    }
}

/// Moves a step `from -> to` if it is still in `from`; `attempt` is recorded.
pub async fn step(
    conn: &mut PgConnection,
    id: Uuid,
    from: StepState,
    to: StepState,
    cause: Cause<'_>,
) -> Result<(), StoreTransitionError> {
    check_step(from, to)?;
    let moved: Option<i64> = sqlx::query_scalar(
        "WITH moved AS (
             UPDATE tasker.steps
                SET state = $3, updated_at = now(),
                    completed_at = CASE WHEN $7 THEN now() ELSE completed_at END
              WHERE id = $1 AND state = $2
          RETURNING id, task_id, attempts)
         INSERT INTO tasker.step_transitions
                (step_id, task_id, from_state, to_state, event, reason, attempt, processor_id)
         SELECT id, task_id, $2, $3, $4, $5, attempts, $6 FROM moved
         RETURNING id",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(cause.event)
    .bind(cause.reason)
    .bind(cause.processor_id)
    .bind(to.is_terminal())
    .fetch_optional(&mut *conn)
    .await?;
    if moved.is_some() {
        return Ok(());
    }
    let found: Option<String> = sqlx::query_scalar("SELECT state FROM tasker.steps WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match found {
        None => Err(StoreTransitionError::NotFound {
            machine: "step",
            id,
        }),
        Some(found) => Err(TransitionError::StateChanged {
            machine: "step",
            id,
            expected: from.to_string(),
            found,
        }
        .into()),
    }
}
