//! Signals (`docs/waits.md`): a named payload sent to a task
//! (`POST /v1/tasks/{id}/signals/{name}`, `tasker signal send`) for the step
//! that waits for it (`wait_for: { signal: <name>, timeout: ... }`).
//!
//! A signal for a step that is waiting completes it at once, its payload the
//! step's result, in the same transaction that records the signal; one sent
//! before the step waits (its parents are still running, or it failed on a
//! time-out and may be retried) is buffered and taken when the step begins to
//! wait (`tasker.wait_due_at`, `crate::wait`). At most one signal per task and
//! name is buffered at a time.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::evaluate::{changed, lock_task};
use super::wait::{finish, WaitEnd};
use super::StoreError;
use tasker_model::change::Changed;
use tasker_model::state::{StepState, TaskState, TransitionError};
use tasker_model::template::{validate_identifier, IdentKind};

/// A signal that was recorded ([`send`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The signal's id (UUIDv7).
    pub signal_id: Uuid,
    /// The step that waits for it.
    pub step_id: Uuid,
    /// That step's name.
    pub step: String,
    /// True when the step took it and completed; false when it is buffered
    /// until the step waits.
    pub consumed: bool,
    /// The step's state after the signal.
    pub step_state: StepState,
    /// The task's state after the signal.
    pub task_state: TaskState,
}

/// Why a signal was not recorded (the task exists and is running).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No step of the task waits for a signal of that name.
    #[error("no step of task {task_id} waits for signal '{name}'")]
    NotAwaited { task_id: Uuid, name: String },
    /// The step that waits for it is done already.
    #[error(
        "step '{step}' of task {task_id}, which waits for signal '{name}', is {state} already"
    )]
    StepDone {
        task_id: Uuid,
        name: String,
        step: String,
        state: StepState,
    },
    /// A signal of that name is already buffered for the task.
    #[error("signal '{name}' is already buffered for task {task_id} (received {received_at}); step '{step}' takes it when it begins to wait")]
    AlreadyBuffered {
        task_id: Uuid,
        name: String,
        step: String,
        received_at: DateTime<Utc>,
    },
}

/// The step a signal is for, locked.
#[derive(sqlx::FromRow)]
struct Waiter {
    id: Uuid,
    name: String,
    state: String,
    /// Its wait begins later (a delayed start's `run_at`).
    not_begun: bool,
}

/// Sends signal `name` with `payload` to task `task_id` (one transaction,
/// task lock first): completes the step waiting for it, enqueueing the
/// children that become ready, or buffers it. `Ok(Err(..))` when refused
/// (nothing written); [`StoreError::TaskNotFound`] for no such task; a
/// [`TransitionError::StateChanged`] when the task has finished. Returns what
/// changed, to announce after the commit.
pub async fn send(
    pool: &PgPool,
    task_id: Uuid,
    name: &str,
    payload: &Value,
    sent_by: &str,
) -> Result<(Result<Sent, Refused>, Changed), StoreError> {
    validate_identifier(IdentKind::SignalName, name).map_err(|e| StoreError::InvalidRequest {
        field: "name".into(),
        reason: e.to_string(),
    })?;
    let mut tx = pool.begin().await?;
    let before = lock_task(&mut tx, task_id).await?;
    if before.is_terminal() {
        return Err(TransitionError::StateChanged {
            machine: "task",
            id: task_id,
            expected: "a task still running".into(),
            found: before.to_string(),
        }
        .into());
    }
    let waiter: Option<Waiter> = sqlx::query_as(
        "SELECT id, name, state, coalesce(started_at > now(), false) AS not_begun
           FROM tasker.steps WHERE task_id = $1 AND wait_signal = $2
          ORDER BY id LIMIT 1 FOR UPDATE",
    )
    .bind(task_id)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let refuse = |r: Refused| Ok((Err(r), Changed::none()));
    let Some(waiter) = waiter else {
        return refuse(Refused::NotAwaited {
            task_id,
            name: name.into(),
        });
    };
    let step_state: StepState = waiter.state.parse()?;
    if matches!(
        step_state,
        StepState::Complete | StepState::ResolvedManually | StepState::Cancelled
    ) {
        return refuse(Refused::StepDone {
            task_id,
            name: name.into(),
            step: waiter.name,
            state: step_state,
        });
    }
    let buffered: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT received_at FROM tasker.signals
          WHERE task_id = $1 AND name = $2 AND consumed_by IS NULL",
    )
    .bind(task_id)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(received_at) = buffered {
        return refuse(Refused::AlreadyBuffered {
            task_id,
            name: name.into(),
            step: waiter.name,
            received_at,
        });
    }
    let take = step_state == StepState::Waiting && !waiter.not_begun;
    let signal_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO tasker.signals (id, task_id, name, payload, sent_by, consumed_by, consumed_at)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN $7::uuid END, CASE WHEN $6 THEN now() END)",
    )
    .bind(signal_id)
    .bind(task_id)
    .bind(name)
    .bind(payload)
    .bind(sent_by)
    .bind(take)
    .bind(waiter.id)
    .execute(&mut *tx)
    .await?;
    let (mut after, mut queues, mut step_after) = (before, Vec::new(), step_state);
    if take {
        let end = WaitEnd::Signal {
            payload: payload.clone(),
        };
        let finished = finish(&mut tx, task_id, waiter.id, before, &end, sent_by).await?;
        let Some((next, q)) = finished else {
            return Err(StoreError::Corrupt(format!(
                "step {} was waiting under its task's lock, then was not",
                waiter.id
            )));
        };
        (after, queues, step_after) = (next, q, StepState::Complete);
    } else if step_state == StepState::Waiting {
        // A delayed start: its wait begins at `started_at`; look then.
        sqlx::query("UPDATE tasker.steps SET wake_at = started_at WHERE id = $1")
            .bind(waiter.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::debug!(%task_id, signal = name, step = %waiter.name, consumed = take, "signal received");
    let sent = Sent {
        signal_id,
        step_id: waiter.id,
        step: waiter.name,
        consumed: take,
        step_state: step_after,
        task_state: after,
    };
    Ok((Ok(sent), changed(task_id, before, after, &queues)))
}
