//! PGMQ queues: names, creation and the few calls tasker makes.
//!
//! Every function takes a connection so that sends can join the caller's
//! transaction ("a state change and the messages it causes commit together").
//! Queue names are derived from validated namespaces and checked again here;
//! PGMQ formats them into identifiers, everything else is a bound parameter.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// The queue workers send step results to and orchestrators read from.
pub const RESULTS_QUEUE: &str = "orchestration_results";

/// PGMQ's own limit on a queue name.
const MAX_QUEUE_NAME: usize = 47;

/// What went wrong with a queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("'{0}' cannot be a queue name: use 1-47 characters of a-z, 0-9 and _, starting with a letter")]
    BadName(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// The queue of a namespace's steps: `steps_<namespace>`.
pub fn step_queue(namespace: &str) -> Result<String, QueueError> {
    let name = format!("steps_{namespace}");
    check_name(&name)?;
    Ok(name)
}

fn check_name(name: &str) -> Result<(), QueueError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_QUEUE_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(QueueError::BadName(name.to_string()))
    }
}

/// PGMQ's table behind `queue`, for the few hot-path statements that use it
/// directly (`pgmq.q_<queue>`); the name is validated first.
pub fn table(queue: &str) -> Result<String, QueueError> {
    check_name(queue)?;
    Ok(format!("pgmq.q_{queue}"))
}

/// A message as read from a queue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub msg_id: i64,
    pub read_ct: i32,
    pub message: Value,
}

/// The body of a message on a namespace's step queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepMessage {
    pub step_id: Uuid,
    pub task_id: Uuid,
}

/// Creates `queue` if missing. Idempotent.
pub async fn ensure(conn: &mut PgConnection, queue: &str) -> Result<(), QueueError> {
    check_name(queue)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = $1)")
            .bind(queue)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        sqlx::query("SELECT pgmq.create($1)")
            .bind(queue)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Sends one message, visible at once.
pub async fn send(conn: &mut PgConnection, queue: &str, body: &Value) -> Result<i64, QueueError> {
    Ok(sqlx::query_scalar("SELECT * FROM pgmq.send($1, $2)")
        .bind(queue)
        .bind(body)
        .fetch_one(conn)
        .await?)
}

/// Sends several messages in one statement.
pub async fn send_batch(
    conn: &mut PgConnection,
    queue: &str,
    bodies: &[Value],
) -> Result<Vec<i64>, QueueError> {
    if bodies.is_empty() {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT * FROM pgmq.send_batch($1, $2::jsonb[])")
            .bind(queue)
            .bind(bodies)
            .fetch_all(conn)
            .await?,
    )
}

/// Reads up to `qty` messages, hiding them for `vt_seconds` (the lease).
pub async fn read(
    conn: &mut PgConnection,
    queue: &str,
    vt_seconds: i32,
    qty: i32,
) -> Result<Vec<Message>, QueueError> {
    Ok(
        sqlx::query_as("SELECT msg_id, read_ct, message FROM pgmq.read($1, $2, $3)")
            .bind(queue)
            .bind(vt_seconds)
            .bind(qty)
            .fetch_all(conn)
            .await?,
    )
}

/// Deletes a message; false when it was already gone.
pub async fn delete(conn: &mut PgConnection, queue: &str, msg_id: i64) -> Result<bool, QueueError> {
    Ok(sqlx::query_scalar("SELECT pgmq.delete($1, $2::bigint)")
        .bind(queue)
        .bind(msg_id)
        .fetch_one(conn)
        .await?)
}

/// Deletes several messages; returns the ids that were deleted.
pub async fn delete_batch(
    conn: &mut PgConnection,
    queue: &str,
    msg_ids: &[i64],
) -> Result<Vec<i64>, QueueError> {
    if msg_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT * FROM pgmq.delete($1, $2::bigint[])")
            .bind(queue)
            .bind(msg_ids)
            .fetch_all(conn)
            .await?,
    )
}

/// Moves a message to the queue's archive (the dead-letter record).
pub async fn archive(
    conn: &mut PgConnection,
    queue: &str,
    msg_id: i64,
) -> Result<bool, QueueError> {
    Ok(sqlx::query_scalar("SELECT pgmq.archive($1, $2::bigint)")
        .bind(queue)
        .bind(msg_id)
        .fetch_one(conn)
        .await?)
}

/// Extends a message's lease: invisible for another `vt_seconds` from now.
/// Returns false when the message no longer exists.
pub async fn extend_lease(
    conn: &mut PgConnection,
    queue: &str,
    msg_id: i64,
    vt_seconds: i32,
) -> Result<bool, QueueError> {
    let row: Option<i64> =
        sqlx::query_scalar("SELECT msg_id FROM pgmq.set_vt($1, $2::bigint, $3::integer)")
            .bind(queue)
            .bind(msg_id)
            .bind(vt_seconds)
            .fetch_optional(conn)
            .await?;
    Ok(row.is_some())
}

/// Depth and age of a queue.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct QueueStats {
    pub queue_name: String,
    pub queue_length: i64,
    pub newest_msg_age_sec: Option<i32>,
    pub oldest_msg_age_sec: Option<i32>,
    pub total_messages: i64,
}

/// PGMQ's metrics for one queue.
pub async fn stats(conn: &mut PgConnection, queue: &str) -> Result<QueueStats, QueueError> {
    Ok(sqlx::query_as(
        "SELECT queue_name, queue_length, newest_msg_age_sec, oldest_msg_age_sec, total_messages \
         FROM pgmq.metrics($1)",
    )
    .bind(queue)
    .fetch_one(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sqlx::PgPool;

    #[test]
    fn queue_names_are_validated() {
        assert_eq!(step_queue("billing").unwrap(), "steps_billing");
        assert!(step_queue("Billing").is_err());
        assert!(step_queue("a;drop").is_err());
        assert!(step_queue(&"a".repeat(41)).is_ok());
        assert!(step_queue(&"a".repeat(42)).is_err());
    }

    #[sqlx::test(migrations = false)]
    async fn send_read_lease_delete(pool: PgPool) {
        crate::migrate::migrate(&pool).await.unwrap();
        let mut c = pool.acquire().await.unwrap();
        ensure(&mut c, "steps_q").await.unwrap();
        ensure(&mut c, "steps_q").await.unwrap();
        let ids = send_batch(&mut c, "steps_q", &[json!({"a": 1}), json!({"a": 2})])
            .await
            .unwrap();
        assert_eq!(ids.len(), 2);
        let got = read(&mut c, "steps_q", 30, 10).await.unwrap();
        assert_eq!(got.len(), 2);
        assert!(
            read(&mut c, "steps_q", 30, 10).await.unwrap().is_empty(),
            "leased messages stay hidden"
        );
        assert!(extend_lease(&mut c, "steps_q", ids[0], 60).await.unwrap());
        assert!(delete(&mut c, "steps_q", ids[0]).await.unwrap());
        assert!(!delete(&mut c, "steps_q", ids[0]).await.unwrap());
        assert!(!extend_lease(&mut c, "steps_q", ids[0], 60).await.unwrap());
        assert_eq!(
            delete_batch(&mut c, "steps_q", &ids).await.unwrap(),
            vec![ids[1]]
        );
        let s = stats(&mut c, "steps_q").await.unwrap();
        assert_eq!((s.queue_length, s.total_messages), (0, 2));
    }
}
