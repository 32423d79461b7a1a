//! Durable waits (`docs/waits.md`): steps that run no handler but wait for a
//! named signal (`wait_for`) or a length of time (`sleep`).
//!
//! A wait step that becomes ready moves to `waiting` instead of `enqueued`
//! (`tasker.enqueue_steps`, `tasker.take_step_results`, `sql/create_task.sql`),
//! with no queue message and a `wake_at`: the end of its sleep or time-out,
//! or at once when its signal is already buffered (`tasker.wait_due_at`). It
//! holds nothing while it waits but its row. The orchestrators' sweep finds
//! the due ones ([`due_tasks`]) and wakes them task by task ([`wake_due`]):
//! a sleep completes, a signal wait takes its buffered signal or, past its
//! time-out, fails (kind `signal_timeout`, not retried). A signal sent while
//! the step waits completes it at once (`crate::signal::send`).
//!
//! Either way the wait ends through `tasker.finish_wait`, which applies the
//! outcome exactly as a worker's result is applied (`tasker.apply_step_result`:
//! ready children enqueued, the task re-decided). Each call is one
//! transaction holding the task row lock first, as every orchestrator
//! transaction does, so of two orchestrators sweeping at once one wakes a step.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::db::Unavailable;
use super::evaluate::{changed, lock_task};
use super::StoreError;
use tasker_model::change::Changed;
use tasker_model::state::TaskState;
use tasker_model::step::kind;
use tasker_model::template::format_duration;

/// The tasks with a step whose wake-up is due (`wake_at` passed), the one due
/// first first; at most `limit` steps are looked at.
pub async fn due_tasks(pool: &PgPool, limit: i64) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT task_id FROM (SELECT task_id, wake_at FROM tasker.steps
                                WHERE wake_at <= now() ORDER BY wake_at LIMIT $1) due
          GROUP BY task_id ORDER BY min(wake_at)",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// How a wait ends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WaitEnd {
    /// A sleep is over; the step's result is `{"slept_until": until}`.
    Slept { until: DateTime<Utc> },
    /// Its signal came; the step's result is the signal's payload.
    Signal { payload: Value },
    /// No signal `signal` within `seconds`: the step fails, not retried.
    TimedOut {
        signal: String,
        seconds: u32,
        attempt: i32,
    },
}

/// A wait's end as `tasker.finish_wait` takes it.
struct Ending {
    /// Why it woke: the audit event of waiting → enqueued_for_orchestration.
    wake_event: &'static str,
    /// `success` or `permanent_error` (`step_results.outcome`).
    outcome: &'static str,
    result: Option<Value>,
    error: Option<Value>,
    /// `complete` or `error`, and the audit event of that move.
    to: &'static str,
    event: &'static str,
    reason: Option<String>,
}

impl WaitEnd {
    fn ending(&self) -> Ending {
        let success = |wake_event, result| Ending {
            wake_event,
            outcome: "success",
            result: Some(result),
            error: None,
            to: "complete",
            event: "succeeded",
            reason: None,
        };
        match self {
            WaitEnd::Slept { until } => success("slept", json!({ "slept_until": until })),
            WaitEnd::Signal { payload } => success("signal_received", payload.clone()),
            WaitEnd::TimedOut {
                signal,
                seconds,
                attempt,
            } => {
                let message = format!(
                    "signal '{signal}' not received within {}",
                    format_duration(*seconds)
                );
                let reason = format!("{}: {message}", kind::SIGNAL_TIMEOUT);
                Ending {
                    wake_event: "signal_timed_out",
                    outcome: "permanent_error",
                    result: None,
                    error: Some(json!({
                        "message": message, "kind": kind::SIGNAL_TIMEOUT, "retryable": false,
                        "retry_after_ms": null, "attempt": attempt,
                    })),
                    to: "error",
                    event: "failed",
                    reason: Some(reason),
                }
            }
        }
    }
}

/// Ends the waiting step `step_id` of `task_id` as `end` says, in the
/// caller's transaction, which holds the task lock and read `task_state`
/// (`tasker.finish_wait`). Returns the task's state and the queues of the
/// children it enqueued; `None` when the step was not waiting (nothing written).
pub(crate) async fn finish(
    conn: &mut PgConnection,
    task_id: Uuid,
    step_id: Uuid,
    task_state: TaskState,
    end: &WaitEnd,
    processor_id: &str,
) -> Result<Option<(TaskState, Vec<String>)>, StoreError> {
    let e = end.ending();
    let (state, queues): (Option<String>, Option<Vec<String>>) = sqlx::query_as(
        "SELECT task_state, enqueued
           FROM tasker.finish_wait($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(task_id)
    .bind(step_id)
    .bind(task_state.as_str())
    .bind(e.wake_event)
    .bind(e.outcome)
    .bind(e.result)
    .bind(e.error)
    .bind(e.to)
    .bind(e.event)
    .bind(e.reason)
    .bind(processor_id)
    .fetch_one(&mut *conn)
    .await?;
    match state {
        None => Ok(None),
        Some(s) => Ok(Some((s.parse()?, queues.unwrap_or_default()))),
    }
}

/// Takes the oldest buffered signal `name` of `task_id` for `step_id`;
/// returns its payload, `None` when none is buffered.
pub(crate) async fn take_signal(
    conn: &mut PgConnection,
    task_id: Uuid,
    name: &str,
    step_id: Uuid,
) -> Result<Option<Value>, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE tasker.signals SET consumed_by = $3, consumed_at = now()
          WHERE id = (SELECT id FROM tasker.signals
                       WHERE task_id = $1 AND name = $2 AND consumed_by IS NULL
                       ORDER BY id LIMIT 1)
         RETURNING payload",
    )
    .bind(task_id)
    .bind(name)
    .bind(step_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// What [`wake_due`] did to one task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Woken {
    /// Sleeps over and signals taken: steps completed.
    pub completed: usize,
    /// Signal waits past their time-out: steps failed.
    pub timed_out: usize,
}

/// A due waiting step, as [`wake_due`] reads it.
#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    wait_signal: Option<String>,
    wait_seconds: i32,
    attempts: i32,
    /// When the wait ends: `started_at + wait_seconds`.
    ends_at: DateTime<Utc>,
    /// Whether that is now or past (the database's clock).
    ended: bool,
}

/// Wakes the due waiting steps of one task (one transaction, task lock held):
/// a sleep past its end completes; a signal wait takes its buffered signal
/// and completes, or past its time-out fails, or else is looked at again at
/// its time-out. Children that become ready are enqueued and the task is
/// re-decided. Steps that no longer wait lose a leftover `wake_at`.
pub async fn wake_due(
    pool: &PgPool,
    task_id: Uuid,
    processor_id: &str,
) -> Result<(Woken, Changed), StoreError> {
    let mut tx = pool.begin().await?;
    let before = lock_task(&mut tx, task_id).await?;
    // An operator completed or resolved a waiting step, or the task ended:
    // nothing to wake there.
    sqlx::query(
        "UPDATE tasker.steps SET wake_at = NULL
          WHERE task_id = $1 AND wake_at IS NOT NULL AND (state <> 'waiting' OR $2)",
    )
    .bind(task_id)
    .bind(before.is_terminal())
    .execute(&mut *tx)
    .await?;
    let mut woken = Woken::default();
    let mut state = before;
    let mut queues = Vec::new();
    if !before.is_terminal() {
        let due: Vec<Due> = sqlx::query_as(
            "SELECT id, wait_signal, wait_seconds, attempts,
                    started_at + make_interval(secs => wait_seconds) AS ends_at,
                    started_at + make_interval(secs => wait_seconds) <= now() AS ended
               FROM tasker.steps
              WHERE task_id = $1 AND state = 'waiting' AND wake_at <= now()
              ORDER BY id",
        )
        .bind(task_id)
        .fetch_all(&mut *tx)
        .await?;
        for step in due {
            let end = match &step.wait_signal {
                None if step.ended => WaitEnd::Slept {
                    until: step.ends_at,
                },
                Some(signal) => match take_signal(&mut tx, task_id, signal, step.id).await? {
                    Some(payload) => WaitEnd::Signal { payload },
                    None if step.ended => WaitEnd::TimedOut {
                        signal: signal.clone(),
                        seconds: u32::try_from(step.wait_seconds).unwrap_or_default(),
                        attempt: step.attempts,
                    },
                    None => {
                        rearm(&mut tx, step.id, step.ends_at).await?;
                        continue;
                    }
                },
                None => {
                    rearm(&mut tx, step.id, step.ends_at).await?;
                    continue;
                }
            };
            if let Some((next, q)) =
                finish(&mut tx, task_id, step.id, state, &end, processor_id).await?
            {
                state = next;
                queues.extend(q);
                match end {
                    WaitEnd::TimedOut { .. } => woken.timed_out += 1,
                    _ => woken.completed += 1,
                }
            }
        }
    }
    tx.commit().await?;
    if woken != Woken::default() {
        tracing::debug!(%task_id, completed = woken.completed, timed_out = woken.timed_out, "woke waiting steps");
    }
    Ok((woken, changed(task_id, before, state, &queues)))
}

/// Looks at a waiting step again at `at` (its wait's end).
async fn rearm(
    conn: &mut PgConnection,
    step_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tasker.steps SET wake_at = $2 WHERE id = $1 AND state = 'waiting'")
        .bind(step_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Wakes every due waiting step, task by task (at most `limit` steps looked
/// at per call): [`due_tasks`], then [`wake_due`] for each. Returns what
/// changed, to announce; a task that fails is logged and left for the next
/// sweep. An unavailable database ends the sweep early with its error.
pub async fn wake_all_due(
    pool: &PgPool,
    limit: i64,
    processor_id: &str,
) -> Result<(Woken, Changed), StoreError> {
    let mut total = Woken::default();
    let mut all = Changed::none();
    for task_id in due_tasks(pool, limit).await? {
        match wake_due(pool, task_id, processor_id).await {
            Ok((woken, changed)) => {
                total.completed += woken.completed;
                total.timed_out += woken.timed_out;
                all.merge(changed);
            }
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => {
                tracing::warn!(%task_id, error = %e, "waking waiting steps failed; will retry")
            }
        }
    }
    Ok((total, all))
}
