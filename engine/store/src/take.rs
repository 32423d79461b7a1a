//! The orchestrator's take of results: read a batch from the results queue
//! and apply it in one statement (`tasker.take_step_results`), then what it
//! handed back one result at a time ([`crate::result::process_batch`]).

use serde_json::Value;
use sqlx::PgPool;

use super::result::{process_batch_on, processed, Decision, ProcessRow, Processed};
use super::StoreError;
use crate::queue;
use tasker_model::change::Changed;
use tasker_model::step::StepResultMessage;

/// Takes a batch of results: [`take_batch_on`]'s statement.
const TAKE_RESULTS: &str = crate::sql::body(include_str!("sql/take_results.sql"));

/// One message taken from the results queue by [`take_batch`].
#[derive(Debug)]
pub enum Taken {
    /// A step result, and what processing it did.
    Result {
        msg_id: i64,
        msg: Box<StepResultMessage>,
        outcome: Result<Processed, StoreError>,
    },
    /// Not a step result (it stays in the queue: the caller dead-letters it).
    Unreadable { msg_id: i64, error: String },
}

impl Taken {
    /// The message's id in the results queue.
    pub fn msg_id(&self) -> i64 {
        match self {
            Taken::Result { msg_id, .. } | Taken::Unreadable { msg_id, .. } => *msg_id,
        }
    }
}

/// Reads up to `qty` results from [`queue::RESULTS_QUEUE`] and processes them:
/// the orchestrator's one call per batch. `tasker.take_step_results`
/// (`migrations/functions/take_step_results.sql`) reads the batch and applies
/// every success in the same statement and commit, as a set; what it hands
/// back unapplied (failures, which need the step's retry policy, or the whole
/// batch when the set path failed) is decided here and applied by
/// [`process_batch_on`](crate::result::process_batch_on), one result per
/// subtransaction, in a second statement on the same connection.
/// Returns every message read, in queue order (an empty vector when the queue
/// had nothing visible), and what the batch changed.
pub async fn take_batch(
    pool: &PgPool,
    lease_seconds: i32,
    qty: i32,
    processor_id: &str,
) -> Result<(Vec<Taken>, Changed), StoreError> {
    let mut conn = pool.acquire().await?;
    take_batch_on(&mut conn, lease_seconds, qty, processor_id).await
}

/// [`take_batch`] with its statements on `conn` (a connection the caller
/// keeps between batches); it takes no other from the pool.
pub async fn take_batch_on(
    conn: &mut sqlx::PgConnection,
    lease_seconds: i32,
    qty: i32,
    processor_id: &str,
) -> Result<(Vec<Taken>, Changed), StoreError> {
    let rows: Vec<TakenRow> = sqlx::query_as(TAKE_RESULTS)
        .bind(lease_seconds)
        .bind(qty)
        .bind(processor_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut all = Changed::none();
    let mut left = Vec::new();
    for row in rows {
        let msg_id = row.msg_id;
        let msg = match serde_json::from_value::<StepResultMessage>(row.message) {
            Ok(msg) => msg,
            Err(e) if row.applied => {
                // Applied by the database, though not in the shape tasker writes.
                tracing::warn!(msg_id, error = %e, "an applied result message is not readable here");
                continue;
            }
            Err(e) => {
                out.push(Taken::Unreadable {
                    msg_id,
                    error: e.to_string(),
                });
                continue;
            }
        };
        if !row.applied {
            left.push((msg_id, msg));
            continue;
        }
        let outcome = processed(&msg, &Decision::success(), row.process, &mut all);
        out.push(Taken::Result {
            msg_id,
            msg: Box::new(msg),
            outcome,
        });
    }
    if !left.is_empty() {
        let outcomes = match process_batch_on(conn, &left, processor_id).await {
            Ok((o, changed)) => {
                all.merge(changed);
                o
            }
            // The successes above are committed; these stay in the queue.
            Err(e) => {
                let reason = e.to_string();
                left.iter()
                    .map(|(_, m)| {
                        Err(StoreError::ResultRolledBack {
                            step: m.step_id,
                            reason: reason.clone(),
                        })
                    })
                    .collect()
            }
        };
        for ((msg_id, msg), outcome) in left.into_iter().zip(outcomes) {
            out.push(Taken::Result {
                msg_id,
                msg: Box::new(msg),
                outcome,
            });
        }
        // What was applied one by one goes back in its place.
        out.sort_by_key(Taken::msg_id);
    }
    Ok((out, all))
}

/// One row of `tasker.take_step_results`.
/// (Also of `tasker.report_outcomes` applying a worker's successes:
/// [`crate::step::report_and_apply_on`].)
#[derive(sqlx::FromRow)]
pub(crate) struct TakenRow {
    pub(crate) msg_id: i64,
    pub(crate) message: Value,
    pub(crate) applied: bool,
    #[sqlx(flatten)]
    pub(crate) process: ProcessRow,
}

/// Reads a batch from the results queue without processing it (a lease only:
/// it commits asynchronously, see `tasker.read_results`). The orchestrator uses
/// [`take_batch`]; this is for tools and tests that hold results back.
pub async fn read_batch(
    pool: &PgPool,
    lease_seconds: i32,
    qty: i32,
) -> Result<Vec<queue::Message>, StoreError> {
    Ok(
        sqlx::query_as("SELECT msg_id, read_ct, message FROM tasker.read_results($1, $2)")
            .bind(lease_seconds)
            .bind(qty)
            .fetch_all(pool)
            .await?,
    )
}
