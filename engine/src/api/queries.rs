//! Read queries the API needs that the store does not offer yet.
//!
//! TODO(move to store::task::list): SQL belongs in `store/`; these live here
//! until they move there (`list_tasks` -> `store::task::list`, `find_step` and
//! `step_transitions` -> `store::step`, `namespace_queues` -> `store::template`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::types::StepTransition;
use crate::store::task::{StepRow, TaskRow};

/// Filters of a task listing; `cursor` is the last id of the previous page.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub namespace: Option<String>,
    pub state: Option<String>,
    pub template: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub cursor: Option<Uuid>,
}

/// Up to `limit` tasks matching `filter`, newest first (UUIDv7 order, so
/// `id < cursor` continues a listing without duplicates).
pub async fn list_tasks(
    pool: &PgPool,
    filter: &TaskFilter,
    limit: i64,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id, t.namespace, tp.name AS template_name, tp.version AS template_version, t.context,
                t.priority, t.idempotency_key, t.state, t.created_at, t.updated_at, t.completed_at
           FROM tasker.tasks t JOIN tasker.templates tp ON tp.id = t.template_id
          WHERE ($1::text IS NULL OR t.namespace = $1)
            AND ($2::text IS NULL OR t.state = $2)
            AND ($3::text IS NULL OR tp.name = $3)
            AND ($4::timestamptz IS NULL OR t.created_at >= $4)
            AND ($5::timestamptz IS NULL OR t.created_at < $5)
            AND ($6::uuid IS NULL OR t.id < $6)
          ORDER BY t.id DESC
          LIMIT $7",
    )
    .bind(&filter.namespace)
    .bind(&filter.state)
    .bind(&filter.template)
    .bind(filter.created_after)
    .bind(filter.created_before)
    .bind(filter.cursor)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A step of `task_id` by id (when `step` parses as a UUID) or by name.
pub async fn find_step(
    pool: &PgPool,
    task_id: Uuid,
    step: &str,
) -> Result<Option<StepRow>, sqlx::Error> {
    let id = Uuid::parse_str(step).ok();
    sqlx::query_as(
        "SELECT id, task_id, name, handler_name, state, attempts, max_attempts, result, last_error,
                next_retry_at, created_at, started_at, completed_at
           FROM tasker.steps
          WHERE task_id = $1 AND (id = $2 OR ($2::uuid IS NULL AND name = $3))",
    )
    .bind(task_id)
    .bind(id)
    .bind(step)
    .fetch_optional(pool)
    .await
}

/// A step's transitions, oldest first.
pub async fn step_transitions(
    pool: &PgPool,
    step_id: Uuid,
) -> Result<Vec<StepTransition>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, from_state, to_state, event, reason, attempt, processor_id, created_at
           FROM tasker.step_transitions WHERE step_id = $1 ORDER BY id",
    )
    .bind(step_id)
    .fetch_all(pool)
    .await
}

/// Every namespace with its queue name.
pub async fn namespace_queues(pool: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT name, queue_name FROM tasker.namespaces ORDER BY name")
        .fetch_all(pool)
        .await
}
