//! The orchestrator's side of step results: for each result, one
//! subtransaction records it, moves the step, enqueues the children that just
//! became ready, re-decides the task (finalizing it when nothing is left) and
//! deletes the result message — state, audit rows and messages commit
//! together. A batch of results is one autocommitted statement
//! (`tasker.process_step_results`): one round trip, one commit.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::evaluate::changed;
use super::StoreError;
use tasker_model::change::Changed;
use tasker_model::state::{StepState, TaskState};
use tasker_model::step::{Outcome, StepResultMessage};
use tasker_model::template::RetryPolicy;

/// Applies results one by one: [`process_batch`]'s statement.
const PROCESS_RESULTS: &str = crate::sql::body(include_str!("sql/process_results.sql"));

/// What processing one result did.
#[derive(Debug, Clone, PartialEq)]
pub enum Processed {
    /// The attempt was not the step's current one (or the step was cancelled or
    /// resolved meanwhile): recorded as stale, nothing else changed.
    Stale,
    /// Step complete; `enqueued` children became ready and were enqueued.
    Completed { enqueued: usize, task: TaskState },
    /// Step will be retried at `at`.
    RetryScheduled { at: DateTime<Utc>, task: TaskState },
    /// Step failed for good.
    Failed { task: TaskState },
}

impl Processed {
    /// A word for what it did: `stale`, `completed`, `retry_scheduled` or
    /// `failed` (the `tasker.result` attribute of its span).
    pub fn label(&self) -> &'static str {
        match self {
            Processed::Stale => "stale",
            Processed::Completed { .. } => "completed",
            Processed::RetryScheduled { .. } => "retry_scheduled",
            Processed::Failed { .. } => "failed",
        }
    }

    /// The task's state after this result, when it changed anything.
    pub fn task_state(&self) -> Option<TaskState> {
        match self {
            Processed::Stale => None,
            Processed::Completed { task, .. }
            | Processed::RetryScheduled { task, .. }
            | Processed::Failed { task } => Some(*task),
        }
    }
}

/// Processes one result message (read from [`crate::queue::RESULTS_QUEUE`] as `msg_id`):
/// [`process_batch`] of one.
pub async fn process(
    pool: &PgPool,
    msg_id: i64,
    msg: &StepResultMessage,
    processor_id: &str,
) -> Result<(Processed, Changed), StoreError> {
    let batch = [(msg_id, msg.clone())];
    let (mut outcomes, changed) = process_batch(pool, &batch, processor_id).await?;
    let processed = outcomes
        .pop()
        .unwrap_or(Err(StoreError::StepNotFound(msg.step_id)))?;
    Ok((processed, changed))
}

/// Processes result messages (`(msg_id, message)` as read from
/// [`crate::queue::RESULTS_QUEUE`]) in one round trip and one commit:
/// `tasker.process_step_results` (`migrations/functions/`) runs, for each result in its
/// own subtransaction, `tasker.process_step_result`: lock the task and step,
/// check that this attempt is still the current one, apply the decision made
/// here (or record the result as stale). Results are passed sorted by task and
/// step, so concurrent orchestrators take task locks in one order.
///
/// The decision needs the step's retry policy only for a failure; the policy
/// never changes after creation, so it is read beforehand, without a lock,
/// with the step's recoveries (takeovers from lost workers, which do not
/// count against the policy's attempts; they change only at a claim, after
/// which this attempt's result would be stale anyway).
/// Returns one outcome per input, in input order: a result whose processing
/// failed was rolled back alone (`ResultRolledBack`; its message stays in the
/// queue and comes back after its lease), an unknown step is `StepNotFound`;
/// and what the batch changed.
pub async fn process_batch(
    pool: &PgPool,
    results: &[(i64, StepResultMessage)],
    processor_id: &str,
) -> Result<(Vec<Result<Processed, StoreError>>, Changed), StoreError> {
    let mut conn = pool.acquire().await?;
    process_batch_on(&mut conn, results, processor_id).await
}

/// [`process_batch`] on `conn`: a caller that holds a connection (the take
/// loop) needs no second one from the pool, so loops holding connections
/// cannot starve each other of them.
pub async fn process_batch_on(
    conn: &mut PgConnection,
    results: &[(i64, StepResultMessage)],
    processor_id: &str,
) -> Result<(Vec<Result<Processed, StoreError>>, Changed), StoreError> {
    let failed: Vec<Uuid> = results
        .iter()
        .filter(|(_, m)| matches!(m.outcome, Outcome::Failure(_)))
        .map(|(_, m)| m.step_id)
        .collect();
    let policies: HashMap<Uuid, (Value, i32)> = if failed.is_empty() {
        HashMap::new()
    } else {
        sqlx::query_as::<_, (Uuid, Value, i32)>(
            "SELECT id, retry, recoveries FROM tasker.steps WHERE id = ANY($1)",
        )
        .bind(&failed)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(id, retry, recoveries)| (id, (retry, recoveries)))
        .collect()
    };
    let mut out: Vec<Option<Result<Processed, StoreError>>> =
        results.iter().map(|_| None).collect();
    let mut decided: Vec<(usize, Decision)> = Vec::with_capacity(results.len());
    for (i, (_, msg)) in results.iter().enumerate() {
        let decision = match &msg.outcome {
            Outcome::Success { .. } => Ok(Decision::success()),
            Outcome::Failure(_) => match policies.get(&msg.step_id) {
                Some((retry, recoveries)) => decide(msg, retry, *recoveries),
                None => Err(StoreError::StepNotFound(msg.step_id)),
            },
        };
        match decision {
            Ok(d) => decided.push((i, d)),
            Err(e) => out[i] = Some(Err(e)),
        }
    }
    decided.sort_by_key(|(i, _)| (results[*i].1.task_id, results[*i].1.step_id));
    let mut all = Changed::none();
    if !decided.is_empty() {
        let rows = apply(conn, results, &decided, processor_id).await?;
        for ((i, decision), row) in decided.iter().zip(rows) {
            let msg = &results[*i].1;
            out[*i] = Some(processed(msg, decision, row, &mut all));
        }
    }
    let out = out
        .into_iter()
        .zip(results)
        .map(|(o, (_, m))| o.unwrap_or(Err(StoreError::StepNotFound(m.step_id))))
        .collect();
    Ok((out, all))
}

/// One call of `tasker.process_step_results` for the decided results, in the
/// order given; returns one row per result in that order.
async fn apply(
    conn: &mut PgConnection,
    results: &[(i64, StepResultMessage)],
    decided: &[(usize, Decision)],
    processor_id: &str,
) -> Result<Vec<ProcessRow>, StoreError> {
    let n = decided.len();
    let mut a = ApplyArrays::with_capacity(n);
    for (i, d) in decided {
        let (msg_id, msg) = &results[*i];
        a.msg_ids.push(*msg_id);
        a.tasks.push(msg.task_id);
        a.steps.push(msg.step_id);
        a.attempts.push(msg.attempt as i32);
        match &msg.outcome {
            Outcome::Success { result } => {
                a.outcomes.push("success");
                a.results.push(Some(result.clone()));
                a.errors.push(None);
            }
            Outcome::Failure(e) => {
                a.outcomes.push(if e.retryable {
                    "retryable_error"
                } else {
                    "permanent_error"
                });
                a.results.push(None);
                a.errors.push(Some(serde_json::json!({
                    "message": e.message, "kind": e.kind, "retryable": e.retryable,
                    "retry_after_ms": e.retry_after_ms, "attempt": msg.attempt,
                })));
            }
        }
        a.workers.push(msg.worker_id.clone());
        a.started.push(msg.started_at);
        a.finished.push(msg.finished_at);
        a.to.push(d.to.as_str());
        a.events.push(d.event);
        a.reasons.push(d.reason.clone());
        a.retry_at.push(d.retry_at);
    }
    let rows: Vec<ProcessRow> = sqlx::query_as(PROCESS_RESULTS)
        .bind(&a.msg_ids)
        .bind(&a.tasks)
        .bind(&a.steps)
        .bind(&a.attempts)
        .bind(&a.outcomes)
        .bind(&a.results)
        .bind(&a.errors)
        .bind(&a.workers)
        .bind(&a.started)
        .bind(&a.finished)
        .bind(&a.to)
        .bind(&a.events)
        .bind(&a.reasons)
        .bind(&a.retry_at)
        .bind(processor_id)
        .fetch_all(&mut *conn)
        .await?;
    if rows.len() != n || rows.iter().zip(&a.msg_ids).any(|(r, id)| r.msg_id != *id) {
        return Err(StoreError::Corrupt(format!(
            "tasker.process_step_results answered {} rows for {n} results",
            rows.len()
        )));
    }
    Ok(rows)
}

/// The parameters of `tasker.process_step_results`, one array per column.
struct ApplyArrays {
    msg_ids: Vec<i64>,
    tasks: Vec<Uuid>,
    steps: Vec<Uuid>,
    attempts: Vec<i32>,
    outcomes: Vec<&'static str>,
    results: Vec<Option<Value>>,
    errors: Vec<Option<Value>>,
    workers: Vec<String>,
    started: Vec<DateTime<Utc>>,
    finished: Vec<DateTime<Utc>>,
    to: Vec<&'static str>,
    events: Vec<&'static str>,
    reasons: Vec<Option<String>>,
    retry_at: Vec<Option<DateTime<Utc>>>,
}

impl ApplyArrays {
    fn with_capacity(n: usize) -> ApplyArrays {
        ApplyArrays {
            msg_ids: Vec::with_capacity(n),
            tasks: Vec::with_capacity(n),
            steps: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            outcomes: Vec::with_capacity(n),
            results: Vec::with_capacity(n),
            errors: Vec::with_capacity(n),
            workers: Vec::with_capacity(n),
            started: Vec::with_capacity(n),
            finished: Vec::with_capacity(n),
            to: Vec::with_capacity(n),
            events: Vec::with_capacity(n),
            reasons: Vec::with_capacity(n),
            retry_at: Vec::with_capacity(n),
        }
    }
}

/// What one result did, from its row; adds what it changed to `all`.
pub(crate) fn processed(
    msg: &StepResultMessage,
    decision: &Decision,
    row: ProcessRow,
    all: &mut Changed,
) -> Result<Processed, StoreError> {
    if let Some(reason) = row.error {
        return Err(StoreError::ResultRolledBack {
            step: msg.step_id,
            reason,
        });
    }
    let (Some(true), Some(current), Some(queues), Some(before), Some(after)) = (
        row.step_found,
        row.is_current,
        row.queues,
        row.task_before,
        row.task_state,
    ) else {
        return Err(StoreError::StepNotFound(msg.step_id));
    };
    let before: TaskState = before.parse()?;
    let after: TaskState = after.parse()?;
    let enqueued = row.enqueued.unwrap_or(0);
    all.merge(changed(msg.task_id, before, after, &queues));
    if !current {
        tracing::info!(
            step_id = %msg.step_id,
            attempt = msg.attempt,
            state = row.step_state.as_deref().unwrap_or("?"),
            attempts = row.step_attempts.unwrap_or(0),
            task = %before,
            "stale result recorded and ignored"
        );
        return Ok(Processed::Stale);
    }
    Ok(match decision.to {
        StepState::Complete => Processed::Completed {
            enqueued: enqueued.max(0) as usize,
            task: after,
        },
        StepState::WaitingForRetry => Processed::RetryScheduled {
            at: decision.retry_at.unwrap_or_else(Utc::now),
            task: after,
        },
        _ => Processed::Failed { task: after },
    })
}

/// One row of `tasker.process_step_results`: all NULL but `msg_id` and
/// `step_found` when the step does not exist, `error` set when the result's
/// subtransaction was rolled back.
#[derive(sqlx::FromRow)]
pub(crate) struct ProcessRow {
    msg_id: i64,
    step_found: Option<bool>,
    is_current: Option<bool>,
    /// The queues the processing sent step messages to.
    queues: Option<Vec<String>>,
    step_state: Option<String>,
    step_attempts: Option<i32>,
    task_before: Option<String>,
    task_state: Option<String>,
    enqueued: Option<i32>,
    error: Option<String>,
}

/// What to do with the result if it is the current attempt's.
pub(crate) struct Decision {
    /// The step's next state.
    to: StepState,
    event: &'static str,
    reason: Option<String>,
    retry_at: Option<DateTime<Utc>>,
}

impl Decision {
    pub(crate) fn success() -> Decision {
        Decision {
            to: StepState::Complete,
            event: "succeeded",
            reason: None,
            retry_at: None,
        }
    }
}

/// Success → complete; a retryable failure with attempts left → waiting for
/// retry at the step's own backoff (or the handler's retry-after, if later);
/// anything else → error. The attempts the policy counts are the handler's
/// own tries: `attempt - recoveries`.
fn decide(msg: &StepResultMessage, retry: &Value, recoveries: i32) -> Result<Decision, StoreError> {
    let Outcome::Failure(err) = &msg.outcome else {
        return Ok(Decision::success());
    };
    let policy: RetryPolicy =
        serde_json::from_value(retry.clone()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let tries = msg.attempt.saturating_sub(recoveries.max(0) as u32).max(1);
    if err.retryable && policy.has_attempts_left(tries) {
        let delay = policy
            .delay_after(tries)
            .max(std::time::Duration::from_millis(
                err.retry_after_ms.unwrap_or(0),
            ));
        let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        return Ok(Decision {
            to: StepState::WaitingForRetry,
            event: "retryable_failure",
            reason: Some(format!("{}: {}", err.kind, err.message)),
            retry_at: Some(at),
        });
    }
    let reason = if err.retryable {
        format!("attempts exhausted ({tries}): {}", err.message)
    } else {
        format!("{}: {}", err.kind, err.message)
    };
    Ok(Decision {
        to: StepState::Error,
        event: "failed",
        reason: Some(reason),
        retry_at: None,
    })
}

/// Counts one more parent done for each child of `step_id`; returns the
/// children that have no parent left to wait for and are still pending.
pub(crate) async fn release_children(
    conn: &mut PgConnection,
    step_id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar("SELECT tasker.release_children($1)")
        .bind(step_id)
        .fetch_one(&mut *conn)
        .await?)
}
