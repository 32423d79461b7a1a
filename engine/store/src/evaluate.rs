//! Deciding a task's state from its steps, and moving steps to `enqueued`
//! with their queue messages. Both run inside the caller's transaction, which
//! must hold the task row lock (`lock_task`).

use std::sync::LazyLock;

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use tasker_model::change::Changed;
use tasker_model::state::{StepState, TaskState};

/// Locks the task row for the rest of the transaction and returns its state.
/// Every change to a task's steps takes this lock first, so the
/// task's decisions (what is ready, is it finished) see each other's commits
/// and happen exactly once.
pub async fn lock_task(conn: &mut PgConnection, task_id: Uuid) -> Result<TaskState, StoreError> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM tasker.tasks WHERE id = $1 FOR UPDATE")
            .bind(task_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(state.ok_or(StoreError::TaskNotFound(task_id))?.parse()?)
}

/// Moves `step_ids` from `from` to `enqueued` (those still in `from`), audits
/// them and sends each one's message to its pool's queue (`tasker.enqueue_steps`);
/// a wait step moves to `waiting` instead, with no message. A step under a
/// concurrency limit is held and its group admitted (`crate::concurrency`).
/// Returns the queue of every step enqueued (its length is how many),
/// admitted steps of other tasks included.
pub async fn enqueue_steps(
    conn: &mut PgConnection,
    step_ids: &[Uuid],
    from: StepState,
    event: &str,
    processor_id: &str,
) -> Result<Vec<String>, StoreError> {
    if step_ids.is_empty() {
        return Ok(Vec::new());
    }
    tasker_model::state::check_step(from, StepState::Enqueued)?;
    let queues: Vec<String> = sqlx::query_scalar("SELECT tasker.enqueue_steps($1, $2, $3, $4)")
        .bind(step_ids)
        .bind(from.as_str())
        .bind(event)
        .bind(processor_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(queues)
}

/// Moves every step of a task not yet in a terminal state to `to`, audited, in
/// one statement (cancelling, resolving or failing a whole task); a waiting
/// step's wake-up goes with it.
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
                 UPDATE tasker.steps s SET state = $2, updated_at = now(), completed_at = now(),
                                           wake_at = NULL
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

/// What a committed change of one task means for others: the queues steps
/// were enqueued on, the task's new state when it changed.
pub(crate) fn changed(
    task_id: Uuid,
    before: TaskState,
    after: TaskState,
    queues: &[String],
) -> Changed {
    let mut changed = Changed::none();
    for q in queues {
        changed = changed.with_queue(q.as_str());
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
