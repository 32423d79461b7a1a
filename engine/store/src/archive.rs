//! Archived messages: the unreadable messages PGMQ keeps in a queue's archive table
//! ([`queue::archive_table`]), listed and sent back to their queue.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use super::StoreError;
use crate::queue;
use tasker_model::change::Changed;

/// One archived message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArchivedMessage {
    pub msg_id: i64,
    pub read_ct: i32,
    pub enqueued_at: DateTime<Utc>,
    pub archived_at: DateTime<Utc>,
    pub message: Value,
}

/// Whether `queue` is a valid queue name that PGMQ knows.
pub async fn queue_exists(pool: &PgPool, queue: &str) -> Result<bool, StoreError> {
    let q = checked(queue)?;
    let mut conn = pool.acquire().await?;
    Ok(queue::exists(&mut conn, q).await?)
}

/// Only tasker's queues are listed: the results queue or `steps_<pool>`
/// with a valid pool name.
fn checked(queue: &str) -> Result<&str, StoreError> {
    let ok = queue == queue::RESULTS_QUEUE
        || queue
            .strip_prefix("steps_")
            .is_some_and(|ns| queue::step_queue(ns).is_ok());
    if ok {
        Ok(queue)
    } else {
        Err(StoreError::InvalidRequest {
            field: "queue".into(),
            reason: format!("'{queue}' is not a tasker queue (the results queue or steps_<pool>)"),
        })
    }
}

/// Archived messages of `queue` with ids above `after`, oldest first, `limit` at most.
pub async fn list(
    pool: &PgPool,
    queue: &str,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<ArchivedMessage>, StoreError> {
    let q = checked(queue)?;
    Ok(sqlx::query_as(&queue::substitute(
        "SELECT msg_id, read_ct, enqueued_at, archived_at, message FROM {archive} \
          WHERE msg_id > $1 ORDER BY msg_id LIMIT $2",
        q,
    )?)
    .bind(after.unwrap_or(0))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Sends archived message `msg_id` back to `queue` and deletes it from the
/// archive, in one transaction. Returns the new message id, or `None` when
/// the archive holds no such message; and what changed.
pub async fn requeue(
    pool: &PgPool,
    queue: &str,
    msg_id: i64,
) -> Result<(Option<i64>, Changed), StoreError> {
    let q = checked(queue)?;
    let mut tx = pool.begin().await?;
    let body: Option<Value> = sqlx::query_scalar(&queue::substitute(
        "DELETE FROM {archive} WHERE msg_id = $1 RETURNING message",
        q,
    )?)
    .bind(msg_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(body) = body else {
        return Ok((None, Changed::none()));
    };
    let new_id = queue::send(&mut tx, q, &body).await?;
    tx.commit().await?;
    Ok((Some(new_id), Changed::queue(q)))
}
