//! Handler logs per attempt (`tasker.step_logs`): the lines a step's handler
//! logged during one attempt ([`tasker_model::step::log`]), written by the
//! worker's reporter just before the attempt's outcome, and read back by
//! `tasker step logs`, the API and the dashboard.
//!
//! One row per (step, attempt), written once: [`record`] is one statement for
//! a whole report batch, and a row already there is left as it is (a report
//! retried after a lost connection writes nothing twice). The worker only
//! calls it when some attempt of the batch logged something, so steps that
//! log nothing cost no statement. A step's rows go with the step
//! (`migrations/functions/delete_step_history.sql`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;
use tasker_model::step::log::{AttemptLines, LogLine};

/// What one attempt logged, to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptLogRow {
    pub step_id: Uuid,
    pub task_id: Uuid,
    pub attempt: u32,
    pub worker_id: String,
    pub lines: AttemptLines,
}

/// What one attempt logged, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAttemptLog {
    pub attempt: u32,
    /// The worker that ran the attempt.
    pub worker_id: String,
    /// When the worker stored the lines (the attempt's end).
    pub created_at: DateTime<Utc>,
    pub lines: Vec<LogLine>,
    /// Lines the caps left out.
    pub dropped: u64,
}

/// Stores the logs of a batch of attempts in one statement; rows already
/// stored for an attempt stay as they are. Empty logs are skipped; nothing is
/// sent when all are empty.
pub async fn record(
    conn: &mut sqlx::PgConnection,
    rows: &[AttemptLogRow],
) -> Result<u64, StoreError> {
    let rows: Vec<&AttemptLogRow> = rows.iter().filter(|r| !r.lines.is_empty()).collect();
    if rows.is_empty() {
        return Ok(0);
    }
    let n = rows.len();
    let (mut step_ids, mut task_ids, mut attempts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut workers, mut lines, mut dropped) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for r in rows {
        step_ids.push(r.step_id);
        task_ids.push(r.task_id);
        attempts.push(i32::try_from(r.attempt).unwrap_or(i32::MAX));
        workers.push(r.worker_id.replace('\0', "\u{FFFD}"));
        lines.push(lines_json(&r.lines.lines)?);
        dropped.push(i64::try_from(r.lines.dropped).unwrap_or(i64::MAX));
    }
    let done = sqlx::query(
        "INSERT INTO tasker.step_logs (step_id, task_id, attempt, worker_id, lines, dropped)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::jsonb[], $6::bigint[])
         ON CONFLICT (step_id, attempt) DO NOTHING",
    )
    .bind(&step_ids)
    .bind(&task_ids)
    .bind(&attempts)
    .bind(&workers)
    .bind(&lines)
    .bind(&dropped)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// The lines as the JSON array stored. PostgreSQL's `jsonb` refuses NUL
/// characters: a message's NULs become U+FFFD rather than failing the batch.
fn lines_json(lines: &[LogLine]) -> Result<Value, StoreError> {
    let clean: Vec<LogLine> = lines
        .iter()
        .map(|l| LogLine {
            message: l.message.replace('\0', "\u{FFFD}"),
            ..l.clone()
        })
        .collect();
    serde_json::to_value(clean).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The logs of a task's step (`step`: its name or its id), oldest attempt
/// first. Empty when the step logged nothing or does not exist.
pub async fn for_step(
    pool: &PgPool,
    task_id: Uuid,
    step: &str,
) -> Result<Vec<StoredAttemptLog>, StoreError> {
    let id = Uuid::parse_str(step).ok();
    let rows: Vec<(i32, String, DateTime<Utc>, Value, i64)> = sqlx::query_as(
        "SELECT l.attempt, l.worker_id, l.created_at, l.lines, l.dropped
           FROM tasker.steps s
           JOIN tasker.step_logs l ON l.step_id = s.id
          WHERE s.task_id = $1 AND (s.id = $2 OR ($2::uuid IS NULL AND s.name = $3))
          ORDER BY l.attempt",
    )
    .bind(task_id)
    .bind(id)
    .bind(step)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(attempt, worker_id, created_at, lines, dropped)| {
            Ok(StoredAttemptLog {
                attempt: u32::try_from(attempt).unwrap_or(0),
                worker_id,
                created_at,
                lines: serde_json::from_value(lines)
                    .map_err(|e| StoreError::Corrupt(format!("step_logs.lines: {e}")))?,
                dropped: u64::try_from(dropped).unwrap_or(0),
            })
        })
        .collect()
}
