//! Recovery of tasks that made no progress: any orchestrator may re-evaluate
//! them; none owns them.

use std::sync::LazyLock;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::evaluate::{changed, enqueue_steps, evaluate_task, lock_task, settle_open_steps};
use super::transition::{self, Cause};
use super::StoreError;
use crate::queue;
use tasker_config::StaleTaskAction;
use tasker_model::change::Changed;
use tasker_model::state::{sql_list, StepState, TaskState};

/// Non-terminal tasks whose task row and steps have not changed for `older_than`.
/// Tasks waiting on purpose (retry backoff, blocked awaiting an operator, a
/// delayed start: stale only `older_than` after its `run_at`; a step waiting
/// for a signal or a time: stale only `older_than` after it was due; a task
/// waiting for a concurrency slot, or with a step held by one) are not stale.
pub async fn stale_tasks(
    pool: &PgPool,
    older_than: Duration,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    // A literal list, so the partial index tasks_active_updated_at (non-terminal
    // tasks) serves the scan.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let waiting_on_purpose = [TaskState::WaitingForRetry, TaskState::BlockedByFailures];
        format!(
            "SELECT t.id FROM tasker.tasks t
              WHERE t.state NOT IN ({})
                AND t.updated_at < now() - make_interval(secs => $1)
                AND (t.run_at IS NULL OR t.run_at < now() - make_interval(secs => $1))
                AND NOT tasker.task_paused(t.id)
                AND NOT EXISTS (SELECT 1 FROM tasker.steps s
                                 WHERE s.task_id = t.id AND s.updated_at >= now() - make_interval(secs => $1))
                AND NOT EXISTS (SELECT 1 FROM tasker.steps s
                                 WHERE s.task_id = t.id AND s.state = 'waiting'
                                   AND s.wake_at >= now() - make_interval(secs => $1))
                AND t.concurrency_admitted
                AND NOT EXISTS (SELECT 1 FROM tasker.steps s
                                 WHERE s.task_id = t.id AND s.concurrency_group IS NOT NULL
                                   AND s.state = 'pending' AND s.pending_parents = 0)
              ORDER BY t.updated_at LIMIT $2",
            sql_list(
                TaskState::ALL
                    .iter()
                    .filter(|s| s.is_terminal() || waiting_on_purpose.contains(s))
            )
        )
    });
    Ok(sqlx::query_scalar(SQL.as_str())
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// Re-evaluates a stale task (one transaction, task lock held):
/// `reevaluate` enqueues steps whose parents are all done but that were never
/// enqueued, re-sends messages of enqueued steps that have none, and re-decides
/// the task's state; `error` moves the task to `error`.
pub async fn recover(
    pool: &PgPool,
    task_id: Uuid,
    action: StaleTaskAction,
    processor_id: &str,
) -> Result<(TaskState, Changed), StoreError> {
    let mut tx = pool.begin().await?;
    let state = lock_task(&mut tx, task_id).await?;
    if state.is_terminal() {
        return Ok((state, Changed::none()));
    }
    if action == StaleTaskAction::Error {
        let reason = "no progress within orchestration.stale_task_after_seconds";
        let cause = Cause {
            event: "stale",
            reason: Some(reason),
            processor_id,
        };
        let mut at = state;
        if tasker_model::state::check_task(at, TaskState::Error).is_err() {
            transition::task(&mut tx, task_id, at, TaskState::EvaluatingResults, cause).await?;
            at = TaskState::EvaluatingResults;
        }
        transition::task(&mut tx, task_id, at, TaskState::Error, cause).await?;
        // No worker may run a step of a failed task.
        settle_open_steps(
            &mut tx,
            task_id,
            StepState::Cancelled,
            "task_failed_stale",
            processor_id,
            Some(reason),
        )
        .await?;
        tx.commit().await?;
        let changed = changed(task_id, state, TaskState::Error, &[]);
        return Ok((TaskState::Error, changed));
    }
    let ready: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tasker.steps WHERE task_id = $1 AND state = 'pending' AND pending_parents = 0",
    )
    .bind(task_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut queues = enqueue_steps(
        &mut tx,
        &ready,
        StepState::Pending,
        "recovered_ready",
        processor_id,
    )
    .await?;
    // Enqueued steps whose message is missing from their pool's queue.
    let enqueued: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, pool FROM tasker.steps WHERE task_id = $1 AND state = 'enqueued' ORDER BY pool",
    )
    .bind(task_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut orphaned = Vec::new();
    for (step_id, pool_name) in enqueued {
        let q = queue::step_queue(&pool_name)?;
        let has_message: bool = sqlx::query_scalar(&queue::substitute(
            "SELECT EXISTS (SELECT 1 FROM {steps} m WHERE m.message->>'step_id' = $1::text)",
            &q,
        )?)
        .bind(step_id)
        .fetch_one(&mut *tx)
        .await?;
        if !has_message {
            let body = serde_json::json!(queue::StepMessage { step_id, task_id });
            sqlx::query("SELECT tasker.send_step_messages(ARRAY[$1], ARRAY[$2::jsonb])")
                .bind(&q)
                .bind(&body)
                .execute(&mut *tx)
                .await?;
            orphaned.push(step_id);
            queues.push(q);
        }
    }
    let next = evaluate_task(&mut tx, task_id, state, processor_id).await?;
    sqlx::query("UPDATE tasker.tasks SET updated_at = now() WHERE id = $1")
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let changed = changed(task_id, state, next, &queues);
    if !ready.is_empty() || !orphaned.is_empty() {
        tracing::warn!(%task_id, ready = ready.len(), resent = orphaned.len(), "recovered a stale task");
    }
    Ok((next, changed))
}
