//! Deciding a task's state from its steps, and moving steps to `enqueued`
//! with their queue messages. Both run inside the caller's transaction, which
//! must hold the task row lock (`lock_task`).

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use super::transition::{self, Cause};
use super::StoreError;
use crate::queue::{self, StepMessage};
use crate::state::{StepState, TaskState};

/// Locks the task row for the rest of the transaction and returns its state and
/// namespace. Every change to a task's steps takes this lock first, so the
/// task's decisions (what is ready, is it finished) see each other's commits
/// and happen exactly once.
pub async fn lock_task(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<(TaskState, String), StoreError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT state, namespace FROM tasker.tasks WHERE id = $1 FOR UPDATE")
            .bind(task_id)
            .fetch_optional(&mut *conn)
            .await?;
    let (state, ns) = row.ok_or(StoreError::TaskNotFound(task_id))?;
    Ok((state.parse()?, ns))
}

/// Moves `step_ids` from `from` to `enqueued` (those still in `from`), audits
/// them and sends their messages to the namespace queue. Returns how many moved.
pub async fn enqueue_steps(
    conn: &mut PgConnection,
    namespace: &str,
    step_ids: &[Uuid],
    from: StepState,
    event: &str,
    processor_id: &str,
) -> Result<usize, StoreError> {
    if step_ids.is_empty() {
        return Ok(0);
    }
    crate::state::check_step(from, StepState::Enqueued)?;
    let moved: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "WITH moved AS (
             UPDATE tasker.steps SET state = 'enqueued', next_retry_at = NULL, updated_at = now()
              WHERE id = ANY($1) AND state = $2
          RETURNING id, task_id, attempts),
         audit AS (
             INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt, processor_id)
             SELECT id, task_id, $2, 'enqueued', $3, attempts, $4 FROM moved)
         SELECT id, task_id FROM moved",
    )
    .bind(step_ids)
    .bind(from.as_str())
    .bind(event)
    .bind(processor_id)
    .fetch_all(&mut *conn)
    .await?;
    let bodies: Vec<serde_json::Value> = moved
        .iter()
        .map(|(step_id, task_id)| {
            serde_json::json!(StepMessage {
                step_id: *step_id,
                task_id: *task_id
            })
        })
        .collect();
    queue::send_batch(conn, &queue::step_queue(namespace)?, &bodies).await?;
    Ok(moved.len())
}

/// After a commit: wakes the namespace's workers when steps were enqueued and
/// announces the task's new state when it changed.
pub(crate) fn announce(pool: &sqlx::PgPool, namespace: &str, task_id: Uuid, before: TaskState, after: TaskState, enqueued: bool) {
    if enqueued {
        if let Ok(q) = queue::step_queue(namespace) {
            crate::wake::hint(pool, &q);
        }
    }
    if after != before {
        crate::wake::task_event(pool, task_id, after);
    }
}

/// The task state its steps call for.
pub fn decide(counts: &HashMap<StepState, i64>) -> TaskState {
    let n = |s: StepState| counts.get(&s).copied().unwrap_or(0);
    let total: i64 = counts.values().sum();
    let done = n(StepState::Complete) + n(StepState::ResolvedManually);
    let in_flight =
        n(StepState::Enqueued) + n(StepState::InProgress) + n(StepState::EnqueuedForOrchestration);
    if done == total {
        TaskState::Complete
    } else if in_flight > 0 {
        TaskState::StepsInProcess
    } else if n(StepState::WaitingForRetry) > 0 {
        TaskState::WaitingForRetry
    } else if n(StepState::Error) > 0 || n(StepState::Cancelled) > 0 {
        TaskState::BlockedByFailures
    } else {
        TaskState::WaitingForDependencies
    }
}

/// Re-decides the task's state from its steps and records the change (through
/// `evaluating_results`) when there is one. The caller holds the task lock and
/// passes the state it read. Returns the new state.
pub async fn evaluate_task(
    conn: &mut PgConnection,
    task_id: Uuid,
    current: TaskState,
    processor_id: &str,
) -> Result<TaskState, StoreError> {
    if current.is_terminal() {
        return Ok(current);
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM tasker.steps WHERE task_id = $1 GROUP BY state",
    )
    .bind(task_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut counts = HashMap::new();
    for (s, n) in rows {
        counts.insert(s.parse::<StepState>()?, n);
    }
    let next = decide(&counts);
    if next == current {
        return Ok(current);
    }
    let mut at = current;
    for to in path(current, next) {
        let event = if to == next {
            event_for(next)
        } else {
            event_for(to)
        };
        transition::task(
            conn,
            task_id,
            at,
            to,
            Cause {
                event,
                reason: None,
                processor_id,
            },
        )
        .await?;
        at = to;
    }
    Ok(next)
}

/// The states a task passes through from `current` to `next`, each step legal.
fn path(current: TaskState, next: TaskState) -> Vec<TaskState> {
    use TaskState::*;
    if next == StepsInProcess
        && matches!(
            current,
            WaitingForRetry | WaitingForDependencies | BlockedByFailures
        )
    {
        return vec![EnqueuingSteps, StepsInProcess];
    }
    let mut p = Vec::new();
    let mut at = current;
    if at == EnqueuingSteps {
        p.push(StepsInProcess);
        at = StepsInProcess;
        if next == StepsInProcess {
            return p;
        }
    }
    if at != EvaluatingResults {
        p.push(EvaluatingResults);
    }
    p.push(next);
    p
}

fn event_for(state: TaskState) -> &'static str {
    match state {
        TaskState::Complete => "all_steps_complete",
        TaskState::StepsInProcess => "steps_in_flight",
        TaskState::WaitingForRetry => "waiting_for_retry",
        TaskState::BlockedByFailures => "blocked_by_failures",
        TaskState::WaitingForDependencies => "waiting_for_dependencies",
        TaskState::Error => "failed",
        TaskState::EnqueuingSteps => "steps_ready",
        _ => "evaluate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_follows_the_steps() {
        let c = |v: &[(StepState, i64)]| v.iter().cloned().collect::<HashMap<_, _>>();
        use StepState::*;
        assert_eq!(
            decide(&c(&[(Complete, 3), (ResolvedManually, 1)])),
            TaskState::Complete
        );
        assert_eq!(
            decide(&c(&[(Complete, 1), (InProgress, 1), (Error, 1)])),
            TaskState::StepsInProcess
        );
        assert_eq!(
            decide(&c(&[(Complete, 1), (WaitingForRetry, 1), (Pending, 1)])),
            TaskState::WaitingForRetry
        );
        assert_eq!(
            decide(&c(&[(Complete, 1), (Error, 1), (Pending, 2)])),
            TaskState::BlockedByFailures
        );
        assert_eq!(
            decide(&c(&[(Complete, 1), (Pending, 2)])),
            TaskState::WaitingForDependencies
        );
    }

    #[test]
    fn every_path_is_legal() {
        for &from in TaskState::ALL.iter().filter(|s| !s.is_terminal()) {
            for &to in TaskState::ALL
                .iter()
                .filter(|s| **s != TaskState::Pending && **s != TaskState::Initializing)
            {
                if from == to
                    || to == TaskState::EnqueuingSteps
                    || to == TaskState::EvaluatingResults
                {
                    continue;
                }
                if matches!(to, TaskState::Cancelled | TaskState::ResolvedManually)
                    || matches!(from, TaskState::Pending | TaskState::Initializing)
                {
                    continue;
                }
                let mut at = from;
                for next in path(from, to) {
                    assert!(
                        crate::state::check_task(at, next).is_ok(),
                        "{from} -> {to}: {at} -> {next}"
                    );
                    at = next;
                }
                assert_eq!(at, to);
            }
        }
    }
}
