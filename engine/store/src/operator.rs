//! Operator actions: cancel a task, retry a failed step, resolve a step or a
//! task manually, complete a step with a given result. Each is one
//! transaction under the task row lock, audited with the operator's reason.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::evaluate::{changed, enqueue_steps, evaluate_task, lock_task, settle_open_steps};
use super::result::release_children;
use super::transition::{self, Cause};
use super::StoreError;
use tasker_model::change::Changed;
use tasker_model::state::{StepState, TaskState, TransitionError};

/// Who acts and why, for the audit trail.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub processor_id: &'a str,
    pub reason: Option<&'a str>,
}

/// Cancels a task: every step not finished is cancelled (a running handler
/// learns it at its next heartbeat; its late result is recorded as stale).
pub async fn cancel_task(
    pool: &PgPool,
    task_id: Uuid,
    actor: Actor<'_>,
) -> Result<(TaskState, Changed), StoreError> {
    end_task(
        pool,
        task_id,
        TaskState::Cancelled,
        ("cancel", "task_cancelled"),
        actor,
    )
    .await
}

/// [`cancel_task`] in the caller's transaction (it takes the task lock); a
/// task already finished is left as it is. Used by concurrency strategies
/// (`crate::concurrency`).
pub(crate) async fn cancel_locked(
    conn: &mut PgConnection,
    task_id: Uuid,
    actor: Actor<'_>,
) -> Result<Changed, StoreError> {
    let state = lock_task(conn, task_id).await?;
    if state.is_terminal() {
        return Ok(Changed::none());
    }
    let events = ("cancel", "task_cancelled");
    end_locked_task(conn, task_id, state, TaskState::Cancelled, events, actor).await
}

/// Resolves a task manually: it ends as `resolved_manually`; unfinished steps
/// are cancelled so no worker runs them.
pub async fn resolve_task(
    pool: &PgPool,
    task_id: Uuid,
    actor: Actor<'_>,
) -> Result<(TaskState, Changed), StoreError> {
    end_task(
        pool,
        task_id,
        TaskState::ResolvedManually,
        ("resolve_manually", "task_resolved"),
        actor,
    )
    .await
}

/// Moves a task to the terminal state `to` and cancels its unfinished steps, in
/// one transaction; `events` names the task and the step audit events.
async fn end_task(
    pool: &PgPool,
    task_id: Uuid,
    to: TaskState,
    events: (&str, &str),
    actor: Actor<'_>,
) -> Result<(TaskState, Changed), StoreError> {
    let mut tx = pool.begin().await?;
    let state = lock_task(&mut tx, task_id).await?;
    let changed = end_locked_task(&mut tx, task_id, state, to, events, actor).await?;
    tx.commit().await?;
    Ok((to, changed))
}

/// Fails a task for good (`error`), in the caller's transaction, which holds
/// the task lock and read `state`: its unfinished steps are cancelled
/// (`<event>` and `task_failed_<event>` in the audit).
pub(crate) async fn fail_task(
    conn: &mut PgConnection,
    task_id: Uuid,
    state: TaskState,
    event: &str,
    actor: Actor<'_>,
) -> Result<(TaskState, Changed), StoreError> {
    let step_event = format!("task_failed_{event}");
    let changed = end_locked_task(
        conn,
        task_id,
        state,
        TaskState::Error,
        (event, &step_event),
        actor,
    )
    .await?;
    Ok((TaskState::Error, changed))
}

/// [`end_task`] inside the caller's transaction (task lock held). A task
/// reaches `error` through `evaluating_results` where the direct move is not
/// legal. Its steps leave the dead-letter queue: the operator decided.
async fn end_locked_task(
    conn: &mut PgConnection,
    task_id: Uuid,
    state: TaskState,
    to: TaskState,
    (task_event, step_event): (&str, &str),
    actor: Actor<'_>,
) -> Result<Changed, StoreError> {
    let cause = Cause {
        event: task_event,
        reason: actor.reason,
        processor_id: actor.processor_id,
    };
    let mut at = state;
    if to == TaskState::Error && tasker_model::state::check_task(at, to).is_err() {
        transition::task(conn, task_id, at, TaskState::EvaluatingResults, cause).await?;
        at = TaskState::EvaluatingResults;
    }
    transition::task(conn, task_id, at, to, cause).await?;
    settle_open_steps(
        conn,
        task_id,
        StepState::Cancelled,
        step_event,
        actor.processor_id,
        actor.reason,
    )
    .await?;
    sqlx::query("DELETE FROM tasker.step_dlq WHERE task_id = $1")
        .bind(task_id)
        .execute(&mut *conn)
        .await?;
    // Its concurrency slots are free: admit what waits for them.
    let queues = crate::concurrency::release_task(conn, task_id, actor.processor_id).await?;
    Ok(changed(task_id, state, to, &queues))
}

async fn lock_step(
    conn: &mut PgConnection,
    task_id: Uuid,
    step_id: Uuid,
) -> Result<StepState, StoreError> {
    let s: Option<String> = sqlx::query_scalar(
        "SELECT state FROM tasker.steps WHERE id = $1 AND task_id = $2 FOR UPDATE",
    )
    .bind(step_id)
    .bind(task_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(s.ok_or(StoreError::StepNotFound(step_id))?.parse()?)
}

fn refuse_if_finished(task_id: Uuid, state: TaskState) -> Result<(), StoreError> {
    if state.is_terminal() {
        return Err(TransitionError::StateChanged {
            machine: "task",
            id: task_id,
            expected: "a task still running".into(),
            found: state.to_string(),
        }
        .into());
    }
    Ok(())
}

/// Retries a failed step: attempts reset to 0, the step is enqueued again and a
/// blocked task resumes.
pub async fn retry_step(
    pool: &PgPool,
    task_id: Uuid,
    step_id: Uuid,
    actor: Actor<'_>,
) -> Result<(TaskState, Changed), StoreError> {
    let mut tx = pool.begin().await?;
    let task_state = lock_task(&mut tx, task_id).await?;
    refuse_if_finished(task_id, task_state)?;
    let state = lock_step(&mut tx, task_id, step_id).await?;
    tasker_model::state::check_step(state, StepState::Enqueued)?;
    if state != StepState::Error {
        return Err(TransitionError::Illegal {
            machine: "step",
            from: state.to_string(),
            to: "enqueued (retry: only failed steps)".into(),
        }
        .into());
    }
    sqlx::query("UPDATE tasker.steps SET attempts = 0, next_retry_at = NULL WHERE id = $1")
        .bind(step_id)
        .execute(&mut *tx)
        .await?;
    let queues = enqueue_steps(
        &mut tx,
        &[step_id],
        StepState::Error,
        "operator_retry",
        actor.processor_id,
    )
    .await?;
    let next = evaluate_task(&mut tx, task_id, task_state, actor.processor_id).await?;
    tx.commit().await?;
    Ok((next, changed(task_id, task_state, next, &queues)))
}

/// Resolves a step manually (`resolved_manually`, which satisfies its
/// children) or completes it with `result` (`complete`). Children that become
/// ready are enqueued and the task is re-decided.
pub async fn finish_step(
    pool: &PgPool,
    task_id: Uuid,
    step_id: Uuid,
    result: Option<Value>,
    actor: Actor<'_>,
) -> Result<(TaskState, Changed), StoreError> {
    let mut tx = pool.begin().await?;
    let task_state = lock_task(&mut tx, task_id).await?;
    refuse_if_finished(task_id, task_state)?;
    let state = lock_step(&mut tx, task_id, step_id).await?;
    let (to, event) = match &result {
        Some(_) => (StepState::Complete, "complete_manually"),
        None => (StepState::ResolvedManually, "resolve_manually"),
    };
    if let Some(r) = &result {
        sqlx::query("UPDATE tasker.steps SET result = $2 WHERE id = $1")
            .bind(step_id)
            .bind(r)
            .execute(&mut *tx)
            .await?;
    }
    transition::step(
        &mut tx,
        step_id,
        state,
        to,
        Cause {
            event,
            reason: actor.reason,
            processor_id: actor.processor_id,
        },
    )
    .await?;
    let ready = release_children(&mut tx, step_id).await?;
    let queues = enqueue_steps(
        &mut tx,
        &ready,
        StepState::Pending,
        "dependencies_met",
        actor.processor_id,
    )
    .await?;
    let next = evaluate_task(&mut tx, task_id, task_state, actor.processor_id).await?;
    tx.commit().await?;
    Ok((next, changed(task_id, task_state, next, &queues)))
}
