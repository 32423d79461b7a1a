//! Creating tasks and reading them back.
//!
//! Creation is one statement, so one transaction and one round trip: the task,
//! its steps, edges, the first transitions and a queue message for every root
//! step commit together or not at all.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::template::TemplateCache;
use super::StoreError;
use crate::queue::{self, StepMessage};
use tasker_model::change::Changed;
use tasker_model::state::StepState;

/// A request to create a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub namespace: String,
    pub name: String,
    /// Template version; `None` means the highest registered version.
    #[serde(default)]
    pub version: Option<String>,
    /// The task's input; must satisfy the template's `input_schema`.
    #[serde(default = "empty_object")]
    pub context: Value,
    #[serde(default)]
    pub priority: i32,
    /// Creating twice with the same key (per namespace) returns the first task.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The outcome of [`create`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = CreatedTask, description = "The outcome of creating a task.")
)]
pub struct Created {
    pub task_id: Uuid,
    /// False when an earlier task with the same idempotency key was returned.
    pub created: bool,
    /// Steps of the task's template that no live worker serves (filled in
    /// by the API; [`create`] leaves it empty). Their steps wait, and end in
    /// error after `orchestration.unserved_step_timeout_seconds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unserved: Vec<crate::worker::UnservedStep>,
}

/// Creates a task: [`create`]'s statement; `{send_roots}` is one of the two below.
const CREATE_TASK: &str = crate::sql::body(include_str!("sql/create_task.sql"));
/// Roots all in one queue: a static INSERT on its table (`{steps}`).
const SEND_ROOTS_TO_ONE_QUEUE: &str =
    "INSERT INTO {steps} (vt, message) SELECT clock_timestamp(), m FROM task, unnest($21::jsonb[]) AS x(m) RETURNING 1";
/// Roots in several queues (pools): one call, one INSERT per queue.
const SEND_ROOTS_TO_QUEUES: &str =
    "SELECT tasker.send_step_messages($23::text[], $21::jsonb[]) FROM task";

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Creates a task from a registered template, as described in the module docs;
/// returns it and what changed (its root steps' queue).
pub async fn create(
    pool: &PgPool,
    templates: &TemplateCache,
    req: &NewTask,
    processor_id: &str,
) -> Result<(Created, Changed), StoreError> {
    if let Some(key) = &req.idempotency_key {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
            return Err(StoreError::InvalidRequest {
                field: "idempotency_key".into(),
                reason: format!("must be 1..={MAX_IDEMPOTENCY_KEY} bytes"),
            });
        }
    }
    let loaded = templates
        .get(pool, &req.namespace, &req.name, req.version.as_deref())
        .await?;
    let template = &loaded.template;
    loaded
        .input
        .validate(&req.context)
        .map_err(|source| StoreError::InputRejected {
            key: template.key(),
            source,
        })?;
    // Each step's pool, and its queue for the roots' messages (validated names).
    let pools: Vec<&str> = template.steps.iter().map(|s| template.pool_of(s)).collect();
    let queues: Vec<String> = pools
        .iter()
        .map(|p| queue::step_queue(p))
        .collect::<Result<_, _>>()?;

    let task_id = Uuid::now_v7();
    let ids: Vec<Uuid> = template.steps.iter().map(|_| Uuid::now_v7()).collect();
    // Step index by name: one lookup per edge, whatever the template's size.
    let by_name: std::collections::HashMap<&str, usize> = template
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let index = |name: &str| by_name.get(name).copied();
    let states: Vec<&str> = template
        .steps
        .iter()
        .map(|s| {
            if s.depends_on.is_empty() {
                StepState::Enqueued.as_str()
            } else {
                StepState::Pending.as_str()
            }
        })
        .collect();
    let retry: Vec<Value> = template
        .steps
        .iter()
        .map(|s| serde_json::to_value(&s.retry))
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut parents = Vec::new();
    let mut children = Vec::new();
    for (i, step) in template.steps.iter().enumerate() {
        for dep in &step.depends_on {
            let p = index(dep)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown dependency {dep}")))?;
            parents.push(ids[p]);
            children.push(ids[i]);
        }
    }
    let root_index: Vec<usize> = (0..ids.len())
        .filter(|&i| states[i] == StepState::Enqueued.as_str())
        .collect();
    let roots: Vec<Uuid> = root_index.iter().map(|&i| ids[i]).collect();
    let root_queues: Vec<&str> = root_index.iter().map(|&i| queues[i].as_str()).collect();
    let messages: Vec<Value> = roots
        .iter()
        .map(|id| {
            serde_json::json!(StepMessage {
                step_id: *id,
                task_id
            })
        })
        .collect();

    // One statement, so one round trip and one (durable) commit: the task, the
    // creation path recorded as the transitions it is made of, the steps,
    // edges and their audit (every step is created pending; roots move on to
    // enqueued at once), and the roots' messages, each on its pool's queue
    // (`tasker.send_step_messages`; `sql/create_task.sql`). Every part reads
    // `task`, which is empty when the idempotency key exists already: then
    // nothing at all is written.
    let sql = match root_queues.split_first() {
        Some((first, rest)) if rest.iter().all(|q| q == first) => queue::substitute(
            &CREATE_TASK.replace("{send_roots}", SEND_ROOTS_TO_ONE_QUEUE),
            first,
        )?,
        _ => CREATE_TASK.replace("{send_roots}", SEND_ROOTS_TO_QUEUES),
    };
    let inserted: Option<Uuid> = sqlx::query_scalar(&sql)
        .bind(task_id)
        .bind(loaded.id)
        .bind(&template.namespace)
        .bind(&req.context)
        .bind(req.priority)
        .bind(&req.idempotency_key)
        .bind(processor_id)
        .bind(&ids)
        .bind(
            template
                .steps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            template
                .steps
                .iter()
                .map(|s| s.handler.name.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            template
                .steps
                .iter()
                .map(|s| s.handler.version.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            template
                .steps
                .iter()
                .map(|s| &s.handler.config)
                .collect::<Vec<_>>(),
        )
        .bind(&retry)
        .bind(
            template
                .steps
                .iter()
                .map(|s| s.retry.max_attempts as i32)
                .collect::<Vec<_>>(),
        )
        .bind(
            template
                .steps
                .iter()
                .map(|s| s.timeout_seconds as i32)
                .collect::<Vec<_>>(),
        )
        .bind(
            template
                .steps
                .iter()
                .map(|s| s.depends_on.len() as i32)
                .collect::<Vec<_>>(),
        )
        .bind(&states)
        .bind(&parents)
        .bind(&children)
        .bind(&roots)
        .bind(&messages)
        .bind(&pools)
        .bind(&root_queues)
        .fetch_optional(pool)
        .await?;
    if inserted.is_none() {
        let existing: Uuid = sqlx::query_scalar(
            "SELECT id FROM tasker.tasks WHERE namespace = $1 AND idempotency_key = $2",
        )
        .bind(&template.namespace)
        .bind(&req.idempotency_key)
        .fetch_one(pool)
        .await?;
        let created = Created {
            task_id: existing,
            created: false,
            unserved: Vec::new(),
        };
        return Ok((created, Changed::none()));
    }
    let created = Created {
        task_id,
        created: true,
        unserved: Vec::new(),
    };
    let mut changed = Changed::none();
    for q in root_queues {
        changed = changed.with_queue(q);
    }
    Ok((created, changed))
}

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
                t.priority, t.idempotency_key, t.state, t.created_at, t.updated_at, t.completed_at
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
                t.priority, t.idempotency_key, t.state, t.created_at, t.updated_at, t.completed_at
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
                last_error, next_retry_at, created_at, started_at, completed_at
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
    Ok(TaskDetail { task, steps, edges })
}
