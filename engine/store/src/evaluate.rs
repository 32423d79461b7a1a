//! Deciding a task's state from its steps, and moving steps to `enqueued`
//! with their queue messages. Both run inside the caller's transaction, which
//! must hold the task row lock (`lock_task`).

use std::sync::LazyLock;

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::queue;
use tasker_model::change::Changed;
use tasker_model::state::{StepState, TaskState};

/// Locks the task row for the rest of the transaction and returns its state and
/// namespace. Every change to a task's steps takes this lock first, so the
/// task's decisions (what is ready, is it finished) see each other's commits
/// and happen exactly once.
pub async fn lock_task(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<(TaskState, String), StoreError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT state, namespace FROM tasker.tasks WHERE id = $1 FOR UPDATE")
            .bind(task_id)
            .fetch_optional(&mut *conn)
            .await?;
    let (state, ns) = row.ok_or(StoreError::TaskNotFound(task_id))?;
    Ok((state.parse()?, ns))
}

/// Moves `step_ids` from `from` to `enqueued` (those still in `from`), audits
/// them and sends their messages to the namespace queue (`tasker.enqueue_steps`).
/// Returns how many moved.
pub async fn enqueue_steps(
    conn: &mut PgConnection,
    namespace: &str,
    step_ids: &[Uuid],
    from: StepState,
    event: &str,
    processor_id: &str,
) -> Result<usize, StoreError> {
    if step_ids.is_empty() {
        return Ok(0);
    }
    tasker_model::state::check_step(from, StepState::Enqueued)?;
    let n: i32 = sqlx::query_scalar("SELECT tasker.enqueue_steps($1, $2, $3, $4, $5)")
        .bind(queue::step_queue(namespace)?)
        .bind(step_ids)
        .bind(from.as_str())
        .bind(event)
        .bind(processor_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n.max(0) as usize)
}

/// Moves every step of a task not yet in a terminal state to `to`, audited, in
/// one statement (cancelling, resolving or failing a whole task).
pub(crate) async fn settle_open_steps(
    conn: &mut PgConnection,
    task_id: Uuid,
    to: StepState,
    event: &str,
    processor_id: &str,
    reason: Option<&str>,
) -> Result<u64, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH moved AS (
                 SELECT id, state AS from_state FROM tasker.steps
                  WHERE task_id = $1 AND state NOT IN ({})
                    FOR UPDATE),
             upd AS (
                 UPDATE tasker.steps s SET state = $2, updated_at = now(), completed_at = now()
                   FROM moved WHERE s.id = moved.id
              RETURNING s.id, s.attempts, moved.from_state)
             INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, reason, attempt, processor_id)
             SELECT id, $1, from_state, $2, $3, $4, attempts, $5 FROM upd",
            StepState::terminal_sql_list()
        )
    });
    let n = sqlx::query(SQL.as_str())
        .bind(task_id)
        .bind(to.as_str())
        .bind(event)
        .bind(reason)
        .bind(processor_id)
        .execute(&mut *conn)
        .await?;
    Ok(n.rows_affected())
}

/// What a committed change of one task means for others: the namespace's
/// queue when steps were enqueued, the task's new state when it changed.
pub(crate) fn changed(
    namespace: &str,
    task_id: Uuid,
    before: TaskState,
    after: TaskState,
    enqueued: bool,
) -> Changed {
    let mut changed = Changed::none();
    if enqueued {
        if let Ok(q) = queue::step_queue(namespace) {
            changed = changed.with_queue(q);
        }
    }
    if after != before {
        changed = changed.with_task(task_id, after);
    }
    changed
}

/// Re-decides the task's state from its steps (`tasker.evaluate_task`:
/// complete when every step is done, else steps_in_process while any is in
/// flight, else waiting_for_retry, else blocked_by_failures, else
/// waiting_for_dependencies) and records the change through the legal path.
/// The caller holds the task lock and passes the state it read. Returns the
/// new state.
pub async fn evaluate_task(
    conn: &mut PgConnection,
    task_id: Uuid,
    current: TaskState,
    processor_id: &str,
) -> Result<TaskState, StoreError> {
    let next: String = sqlx::query_scalar("SELECT tasker.evaluate_task($1, $2, $3)")
        .bind(task_id)
        .bind(current.as_str())
        .bind(processor_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(next.parse()?)
}
