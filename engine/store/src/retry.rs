//! Retries whose time has come: found by the orchestrator's sweep and
//! enqueued task by task.

use sqlx::PgPool;
use uuid::Uuid;

use super::evaluate::{changed, enqueue_steps, evaluate_task, lock_task};
use super::StoreError;
use tasker_model::change::Changed;
use tasker_model::state::StepState;

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
) -> Result<(usize, Changed), StoreError> {
    let mut tx = pool.begin().await?;
    let task_state = lock_task(&mut tx, task_id).await?;
    if task_state.is_terminal() {
        tx.rollback().await?;
        return Ok((0, Changed::none()));
    }
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tasker.steps WHERE task_id = $1 AND state = 'waiting_for_retry' AND next_retry_at <= now()",
    )
    .bind(task_id)
    .fetch_all(&mut *tx)
    .await?;
    let queues = enqueue_steps(
        &mut tx,
        &due,
        StepState::WaitingForRetry,
        "retry_due",
        processor_id,
    )
    .await?;
    let after = evaluate_task(&mut tx, task_id, task_state, processor_id).await?;
    tx.commit().await?;
    Ok((queues.len(), changed(task_id, task_state, after, &queues)))
}
