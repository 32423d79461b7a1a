//! PGMQ queues: names, creation and the few calls tasker makes. The one
//! module that knows PGMQ's functions and table names: a statement elsewhere
//! that works on a queue's table directly (the hot path's, `src/sql/`) names
//! it by a placeholder, `{steps}`, `{results}` or `{archive}`, that
//! [`substitute`] replaces.
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

/// The step queue of a pool (a namespace is one): `steps_<pool>`.
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

/// The prefix of PGMQ's table of a queue, `pgmq.q_<queue>`.
const TABLE: &str = "pgmq.q_";
/// The prefix of PGMQ's archive table of a queue, `pgmq.a_<queue>`.
const ARCHIVE_TABLE: &str = "pgmq.a_";

/// PGMQ's table behind `queue` (`pgmq.q_<queue>`), for the few statements
/// that use it directly; the name is validated first.
pub fn table(queue: &str) -> Result<String, QueueError> {
    check_name(queue)?;
    Ok(format!("{TABLE}{queue}"))
}

/// PGMQ's archive table of `queue` (`pgmq.a_<queue>`), where archived (dead)
/// messages are kept; the name is validated first.
pub fn archive_table(queue: &str) -> Result<String, QueueError> {
    check_name(queue)?;
    Ok(format!("{ARCHIVE_TABLE}{queue}"))
}

/// `sql` with its placeholders for PGMQ's tables replaced, `queue` being the
/// statement's queue (validated first):
///
/// * `{steps}` → `queue`'s table ([`table`]),
/// * `{archive}` → `queue`'s archive table ([`archive_table`]),
/// * `{results}` → the table of [`RESULTS_QUEUE`].
///
/// Any other brace is left as it is (`'{}'::jsonb`, `{36}` in a pattern). One
/// pass and one allocation, as the `format!` it replaces; the text is the same
/// for every call with one queue, so the connection's prepared statement is
/// found again each time.
pub fn substitute(sql: &str, queue: &str) -> Result<String, QueueError> {
    check_name(queue)?;
    let mut out = String::with_capacity(sql.len() + 4 * (TABLE.len() + MAX_QUEUE_NAME));
    let mut rest = sql;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        rest = if let Some(after) = tail.strip_prefix("{steps}") {
            out.push_str(TABLE);
            out.push_str(queue);
            after
        } else if let Some(after) = tail.strip_prefix("{archive}") {
            out.push_str(ARCHIVE_TABLE);
            out.push_str(queue);
            after
        } else if let Some(after) = tail.strip_prefix("{results}") {
            out.push_str(TABLE);
            out.push_str(RESULTS_QUEUE);
            after
        } else {
            out.push('{');
            &tail[1..]
        };
    }
    out.push_str(rest);
    Ok(out)
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

/// Whether PGMQ knows `queue` (a valid name).
pub async fn exists(conn: &mut PgConnection, queue: &str) -> Result<bool, QueueError> {
    check_name(queue)?;
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = $1)")
            .bind(queue)
            .fetch_one(conn)
            .await?,
    )
}

/// Creates `queue` if missing, with, for a step queue (`steps_<pool>`), the
/// index the claim reads messages in `rank` order by (`sql/claim_steps.sql`).
/// Idempotent, and safe when several processes ensure one queue at once: an
/// advisory lock on the name serializes them (in a transaction, or a
/// savepoint of the caller's, so the lock lasts until the caller commits).
pub async fn ensure(conn: &mut PgConnection, queue: &str) -> Result<(), QueueError> {
    use sqlx::Connection;
    check_name(queue)?;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tasker.queue'), hashtext($1))")
        .bind(queue)
        .execute(&mut *tx)
        .await?;
    if !exists(&mut tx, queue).await? {
        sqlx::query("SELECT pgmq.create($1)")
            .bind(queue)
            .execute(&mut *tx)
            .await?;
    }
    if queue.starts_with("steps_") {
        let indexed: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("pgmq.q_{queue}_rank_idx"))
            .fetch_one(&mut *tx)
            .await?;
        if !indexed {
            let index = format!(
                "CREATE INDEX IF NOT EXISTS \"q_{queue}_rank_idx\" ON {} \
                 (((message->>'rank')::float8) NULLS FIRST, msg_id)",
                table(queue)?
            );
            sqlx::query(&index).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
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

    #[test]
    fn tables_and_placeholders() {
        assert_eq!(table("steps_a").unwrap(), "pgmq.q_steps_a");
        assert_eq!(archive_table("steps_a").unwrap(), "pgmq.a_steps_a");
        assert!(table("a;drop").is_err());
        assert!(archive_table("A").is_err());
        assert_eq!(
            substitute(
                "INSERT INTO {results} SELECT '{}', '{36}', {x} FROM {steps}, {archive} {steps}{",
                "steps_a"
            )
            .unwrap(),
            "INSERT INTO pgmq.q_orchestration_results SELECT '{}', '{36}', {x} \
             FROM pgmq.q_steps_a, pgmq.a_steps_a pgmq.q_steps_a{"
        );
        assert!(matches!(
            substitute("SELECT 1 FROM {steps}", "x y"),
            Err(QueueError::BadName(_))
        ));
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
