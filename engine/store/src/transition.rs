//! Persisting a state change: a compare-and-set on the row's current state
//! plus an audit row, in one call (`tasker.transition_task` /
//! `tasker.transition_step`, `migrations/functions/`). Of two concurrent identical
//! transitions exactly one matches the `WHERE state = from`; the other gets
//! [`TransitionError::StateChanged`].
//!
//! No NOTIFY happens inside these transactions (a notifying commit holds a
//! cluster-wide lock while it flushes); the store returns a `Changed` and callers announce it (`Wakeups`) after the
//! commit instead.

use sqlx::PgConnection;
use uuid::Uuid;

use tasker_model::state::{check_step, check_task, StepState, TaskState, TransitionError};

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
    let found: Option<String> =
        sqlx::query_scalar("SELECT tasker.transition_task($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(cause.event)
            .bind(cause.reason)
            .bind(cause.processor_id)
            .fetch_one(&mut *conn)
            .await?;
    outcome("task", id, from.as_str(), found)
}

/// Moves a step `from -> to` if it is still in `from`; its attempt is recorded.
pub async fn step(
    conn: &mut PgConnection,
    id: Uuid,
    from: StepState,
    to: StepState,
    cause: Cause<'_>,
) -> Result<(), StoreTransitionError> {
    check_step(from, to)?;
    let found: Option<String> =
        sqlx::query_scalar("SELECT tasker.transition_step($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(cause.event)
            .bind(cause.reason)
            .bind(cause.processor_id)
            .fetch_one(&mut *conn)
            .await?;
    outcome("step", id, from.as_str(), found)
}

/// `transition_*` returns NULL when the row moved, else the state it found
/// (`''` when there is no such row).
fn outcome(
    machine: &'static str,
    id: Uuid,
    expected: &str,
    found: Option<String>,
) -> Result<(), StoreTransitionError> {
    match found {
        None => Ok(()),
        Some(f) if f.is_empty() => Err(StoreTransitionError::NotFound { machine, id }),
        Some(found) => Err(TransitionError::StateChanged {
            machine,
            id,
            expected: expected.to_string(),
            found,
        }
        .into()),
    }
}
