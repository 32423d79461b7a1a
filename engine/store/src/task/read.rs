//! Reading tasks back: rows, details, listings, namespaces.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::StoreError;

/// A task row.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = Task, description = "A task.")
)]
pub struct TaskRow {
    pub id: Uuid,
    pub namespace: String,
    pub template_name: String,
    pub template_version: String,
    /// The task's input. In a listing only with `include_context=true`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    pub priority: i32,
    pub idempotency_key: Option<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// A delayed start: no step is claimed before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// The schedule that fired this task, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<Uuid>,
    /// The task's W3C `traceparent`: its trace id names the task's trace in
    /// a tracing backend (`docs/traces.md`). None for tasks made before 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// A step row, as shown to users.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = Step, description = "A step of a task.")
)]
pub struct StepRow {
    pub id: Uuid,
    pub task_id: Uuid,
    pub name: String,
    pub handler_name: String,
    pub state: String,
    /// Starts so far: the handler's own tries plus `recoveries`.
    pub attempts: i32,
    /// Starts that took over from a lost worker (its lease expired); they do
    /// not count against `max_attempts`.
    pub recoveries: i32,
    pub max_attempts: i32,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
    /// True when a listing left `result` out to stay within
    /// `web.list_payload_limit_bytes`; read the step itself for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[sqlx(default)]
    pub result_omitted: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub last_error: Option<Value>,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The signal the step waits for (a `wait_for` step, `docs/waits.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[sqlx(default)]
    pub wait_signal: Option<String>,
    /// While the step is `waiting`: when its sleep ends, or its signal times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[sqlx(default)]
    pub wait_until: Option<DateTime<Utc>>,
}

/// A task with its steps and edges. Step results past
/// `web.list_payload_limit_bytes` are left out (`result_omitted`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = TaskDetailBody, description = "A task with its steps and the DAG's edges.")
)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: TaskRow,
    pub steps: Vec<StepRow>,
    /// `[parent step name, child step name]` pairs.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub edges: Vec<(String, String)>,
    /// Whether a pause (of the task, its template or its namespace) holds
    /// its steps: `tasker pause list` shows which.
    #[serde(default)]
    pub paused: bool,
}

/// Filters of a task listing ([`list`]); `cursor` is the last id of the
/// previous page.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub namespace: Option<String>,
    /// Only tasks of one of these namespaces (a namespace-limited key).
    pub namespaces: Option<Vec<String>>,
    pub state: Option<String>,
    pub template: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub cursor: Option<Uuid>,
}

/// Up to `limit` tasks matching `filter`, newest first (UUIDv7 order, so
/// `id < cursor` continues a listing without duplicates).
pub async fn list(
    pool: &PgPool,
    filter: &TaskFilter,
    limit: i64,
) -> Result<Vec<TaskRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.namespace, tp.name AS template_name, tp.version AS template_version,
                NULL::jsonb AS context,
                t.priority, t.idempotency_key, t.state, t.created_at, t.updated_at, t.completed_at,
                t.run_at, t.schedule_id, t.traceparent
           FROM tasker.tasks t JOIN tasker.templates tp ON tp.id = t.template_id
          WHERE ($1::text IS NULL OR t.namespace = $1)
            AND ($2::text IS NULL OR t.state = $2)
            AND ($3::text IS NULL OR tp.name = $3)
            AND ($4::timestamptz IS NULL OR t.created_at >= $4)
            AND ($5::timestamptz IS NULL OR t.created_at < $5)
            AND ($6::uuid IS NULL OR t.id < $6)
            AND ($8::text[] IS NULL OR t.namespace = ANY($8))
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
    .bind(&filter.namespaces)
    .fetch_all(pool)
    .await?)
}

/// The contexts of the first of `ids` (in order) whose sizes, as JSON
/// text, add up to at most `budget` bytes, at least one; the rest are left
/// out, for a listing to end its page there. `None` for a task that no
/// longer exists.
pub async fn contexts_within(
    pool: &PgPool,
    ids: &[Uuid],
    budget: u64,
) -> Result<Vec<Option<Value>>, StoreError> {
    let sizes: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT id, octet_length(context::text)::bigint FROM tasker.tasks WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    let size_of = |id: &Uuid| {
        sizes
            .iter()
            .find(|(i, _)| i == id)
            .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
    };
    let mut total = 0u64;
    let mut taken = Vec::new();
    for id in ids {
        total = total.saturating_add(size_of(id));
        if total > budget && !taken.is_empty() {
            break;
        }
        taken.push(*id);
    }
    let rows: Vec<(Uuid, Value)> =
        sqlx::query_as("SELECT id, context FROM tasker.tasks WHERE id = ANY($1)")
            .bind(&taken)
            .fetch_all(pool)
            .await?;
    Ok(taken
        .iter()
        .map(|id| rows.iter().find(|(i, _)| i == id).map(|(_, c)| c.clone()))
        .collect())
}

/// The namespace of a task, `None` when there is no such task.
pub async fn namespace_of(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT namespace FROM tasker.tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The namespace of the task a step belongs to, `None` when there is no such step.
pub async fn namespace_of_step(
    pool: &PgPool,
    step_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT t.namespace FROM tasker.steps s JOIN tasker.tasks t ON t.id = s.task_id
          WHERE s.id = $1",
    )
    .bind(step_id)
    .fetch_optional(pool)
    .await
}

/// The task's current state name, `None` when there is no such task.
pub async fn state(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT state FROM tasker.tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Reads one task row.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<TaskRow, StoreError> {
    sqlx::query_as(
        "SELECT t.id, t.namespace, tp.name AS template_name, tp.version AS template_version, t.context,
                t.priority, t.idempotency_key, t.state, t.created_at, t.updated_at, t.completed_at,
                t.run_at, t.schedule_id, t.traceparent
           FROM tasker.tasks t JOIN tasker.templates tp ON tp.id = t.template_id
          WHERE t.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::TaskNotFound(id))
}

/// Reads a task with its steps (in creation order) and edges.
pub async fn detail(pool: &PgPool, id: Uuid) -> Result<TaskDetail, StoreError> {
    detail_within(pool, id, u64::MAX).await
}

/// [`detail`] with step results, in step order, while their JSON text adds
/// up to at most `results_budget` bytes; the others are `result_omitted`.
pub async fn detail_within(
    pool: &PgPool,
    id: Uuid,
    results_budget: u64,
) -> Result<TaskDetail, StoreError> {
    let mut conn = pool.acquire().await?;
    let task = get(&mut conn, id).await?;
    // Results in step order while their JSON text fits `results_budget`.
    let steps = sqlx::query_as(
        "SELECT id, task_id, name, handler_name, state, attempts, recoveries, max_attempts,
                CASE WHEN running <= $2 THEN result END AS result,
                (result IS NOT NULL AND running > $2) AS result_omitted,
                last_error, next_retry_at, created_at, started_at, completed_at, wait_signal,
                CASE WHEN state = 'waiting'
                     THEN started_at + make_interval(secs => wait_seconds) END AS wait_until
           FROM (SELECT s.*, sum(coalesce(octet_length(s.result::text), 0))
                               OVER (ORDER BY s.id) AS running
                   FROM tasker.steps s WHERE s.task_id = $1) sized
          ORDER BY id",
    )
    .bind(id)
    .bind(i64::try_from(results_budget).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    let edges = sqlx::query_as(
        "SELECT p.name, c.name FROM tasker.step_edges e
           JOIN tasker.steps p ON p.id = e.parent_id
           JOIN tasker.steps c ON c.id = e.child_id
          WHERE e.task_id = $1 ORDER BY p.id, c.id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let paused = sqlx::query_scalar("SELECT tasker.task_paused($1)")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(TaskDetail {
        task,
        steps,
        edges,
        paused,
    })
}
