//! Reads for operators: throughput and latency over a window, the slowest
//! steps, task latency for the metrics, and a task's transition history for
//! the live event stream.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::state::TaskState;

/// Counts and timings of the tasks created and the steps finished since a moment.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Tasks created in the window, by current state.
    pub tasks_by_state: Vec<(String, i64)>,
    /// Successful, current step attempts recorded in the window.
    pub steps_completed: i64,
    /// Creation to completion of the tasks created in the window and complete, seconds.
    pub latency_p50_seconds: Option<f64>,
    pub latency_p95_seconds: Option<f64>,
    /// The longest step attempts recorded in the window, longest first.
    pub slowest_steps: Vec<SlowStep>,
}

/// One long step attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SlowStep {
    pub task_id: Uuid,
    pub step_name: String,
    pub handler_name: String,
    pub attempt: i32,
    pub duration_seconds: f64,
}

/// The numbers of `GET /v1/analytics` since `since`; `slowest` attempts at most.
pub async fn summary(
    pool: &PgPool,
    since: DateTime<Utc>,
    slowest: i64,
) -> Result<Summary, sqlx::Error> {
    let tasks_by_state: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM tasker.tasks WHERE created_at >= $1 GROUP BY state ORDER BY state",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    let steps_completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.step_results \
         WHERE recorded_at >= $1 AND outcome = 'success' AND NOT stale",
    )
    .bind(since)
    .fetch_one(pool)
    .await?;
    let (latency_p50_seconds, latency_p95_seconds): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l), \
                percentile_cont(0.95) WITHIN GROUP (ORDER BY l) \
           FROM (SELECT extract(epoch FROM completed_at - created_at)::float8 AS l \
                   FROM tasker.tasks \
                  WHERE created_at >= $1 AND state = 'complete' AND completed_at IS NOT NULL) t",
    )
    .bind(since)
    .fetch_one(pool)
    .await?;
    let slowest_steps: Vec<SlowStep> = sqlx::query_as(
        "SELECT r.task_id, s.name AS step_name, s.handler_name, r.attempt, \
                extract(epoch FROM r.finished_at - r.started_at)::float8 AS duration_seconds \
           FROM tasker.step_results r JOIN tasker.steps s ON s.id = r.step_id \
          WHERE r.recorded_at >= $1 AND r.started_at IS NOT NULL AND r.finished_at IS NOT NULL \
          ORDER BY r.finished_at - r.started_at DESC, r.id \
          LIMIT $2",
    )
    .bind(since)
    .bind(slowest)
    .fetch_all(pool)
    .await?;
    Ok(Summary {
        tasks_by_state,
        steps_completed,
        latency_p50_seconds,
        latency_p95_seconds,
        slowest_steps,
    })
}

/// Seconds from each task's creation to its completion (or to now, if it has
/// not completed), in one query; unknown tasks are left out.
pub async fn task_latencies_seconds(
    pool: &PgPool,
    task_ids: &[Uuid],
) -> Result<Vec<(Uuid, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, extract(epoch FROM coalesce(completed_at, now()) - created_at)::float8 \
           FROM tasker.tasks WHERE id = ANY ($1)",
    )
    .bind(task_ids)
    .fetch_all(pool)
    .await
}

/// One transition of a task or of one of its steps.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryEntry {
    /// `task` or `step`.
    pub kind: String,
    /// The transition's id (unique within its kind).
    pub id: i64,
    /// The step's name; `None` for the task's own transitions.
    pub step_name: Option<String>,
    pub from_state: Option<String>,
    pub to_state: String,
    pub attempt: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// Where a task's history stands: its current state and the last task and
/// step transition ids; `None` when there is no such task. Costs two index
/// probes however long the history is.
pub async fn history_mark(
    pool: &PgPool,
    task_id: Uuid,
) -> Result<Option<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.state,
                coalesce((SELECT max(id) FROM tasker.task_transitions WHERE task_id = t.id), 0),
                coalesce((SELECT max(id) FROM tasker.step_transitions WHERE task_id = t.id), 0)
           FROM tasker.tasks t WHERE t.id = $1",
    )
    .bind(task_id)
    .fetch_optional(pool)
    .await
}

/// A page of a task's history: up to `limit` task transitions after id
/// `after_task` and up to `limit` step transitions after id `after_step`,
/// in the order they happened (within one transaction, the steps' before
/// the task's: they caused it).
pub async fn history_after(
    pool: &PgPool,
    task_id: Uuid,
    after_task: i64,
    after_step: i64,
    limit: i64,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM (
           (SELECT 'task' AS kind, t.id, NULL::text AS step_name, t.from_state, t.to_state,
                   NULL::integer AS attempt, t.created_at
              FROM tasker.task_transitions t WHERE t.task_id = $1 AND t.id > $2
             ORDER BY t.id LIMIT $4)
           UNION ALL
           (SELECT 'step', st.id, s.name, st.from_state, st.to_state, st.attempt, st.created_at
              FROM tasker.step_transitions st JOIN tasker.steps s ON s.id = st.step_id
             WHERE st.task_id = $1 AND st.id > $3
             ORDER BY st.id LIMIT $4)
         ) page ORDER BY created_at, kind, id",
    )
    .bind(task_id)
    .bind(after_task)
    .bind(after_step)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Observes finished tasks as they are reported on `inbox` (the task and the
/// state a result left it in): logs each (info when complete, warn when it
/// needs attention) and records the completed ones' latencies, read in one
/// query for whatever has piled up (`tasker_task_latency_seconds`). Runs
/// until every sender is gone. The orchestrator's finalizer, and a worker
/// that applies its own successes, each run one.
pub async fn observe_finished(
    pool: PgPool,
    mut inbox: tokio::sync::mpsc::Receiver<(Uuid, TaskState)>,
) {
    /// Finished tasks whose latencies are read in one query, at most.
    const LATENCY_BATCH: usize = 128;
    let mut complete = Vec::with_capacity(LATENCY_BATCH);
    while let Some(first) = inbox.recv().await {
        // Whatever else has piled up goes with it: one query, not one a task.
        let mut next = Some(first);
        while let Some((task_id, state)) = next {
            match state {
                TaskState::Complete => {
                    tracing::info!(%task_id, "task complete");
                    complete.push(task_id);
                }
                other => tracing::warn!(%task_id, state = %other, "task needs attention"),
            }
            next = if complete.len() < LATENCY_BATCH {
                inbox.try_recv().ok()
            } else {
                None
            };
        }
        if complete.is_empty() {
            continue;
        }
        match task_latencies_seconds(&pool, &complete).await {
            Ok(latencies) => {
                for (_, secs) in latencies {
                    tasker_model::telemetry::record_task_latency(secs);
                }
            }
            Err(e) => {
                tracing::debug!(tasks = complete.len(), error = %e, "task latencies unavailable")
            }
        }
        complete.clear();
    }
}
