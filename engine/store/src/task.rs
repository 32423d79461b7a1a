//! Creating tasks and reading them back.
//!
//! Creation is one statement, so one transaction and one round trip: the task,
//! its steps, edges, the first transitions and a queue message for every root
//! step commit together or not at all. [`create_batch`] creates many tasks in
//! one transaction (one commit for all).

mod batch;
mod read;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use batch::{create_batch, MAX_BATCH};
pub use read::*;

use super::template::TemplateCache;
use super::StoreError;
use crate::queue;
use tasker_model::change::Changed;
use tasker_model::state::StepState;
use tasker_model::trace::Traceparent;

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
    /// The W3C `traceparent` of the submission (the API takes it from the
    /// request's `traceparent` header): the task's trace continues it. `None`
    /// (or a malformed value) starts a new trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// A delayed start of a new task ([`create_at`]): no step is claimed before
/// `run_at`, or before now + `delay_seconds`; neither means at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// At most [`MAX_DELAY`] ahead; up to [`PAST_TOLERANCE`] in the past means now.
    pub run_at: Option<DateTime<Utc>>,
    /// Excludes `run_at`.
    pub delay_seconds: Option<u64>,
}

/// Farthest ahead a delayed start may be: a year.
pub const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// How far in the past a `run_at` may be (clock skew), meaning "now".
pub const PAST_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(60);

impl Start {
    /// When the task's steps may first run, `None` for at once: `run_at` or
    /// now + `delay_seconds` (not both), at most [`MAX_DELAY`] ahead; a
    /// `run_at` up to [`PAST_TOLERANCE`] in the past is now, earlier is refused.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let invalid = |field: &str, reason: String| StoreError::InvalidRequest {
            field: field.into(),
            reason,
        };
        let max = chrono::Duration::from_std(MAX_DELAY).unwrap_or(chrono::Duration::MAX);
        let tolerance = chrono::Duration::from_std(PAST_TOLERANCE).unwrap_or_default();
        let (field, at) = match (self.run_at, self.delay_seconds) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "run_at",
                    "and delay_seconds exclude each other: give one".into(),
                ))
            }
            (None, None) => return Ok(None),
            (Some(at), None) => ("run_at", at),
            (None, Some(secs)) => {
                let delay = i64::try_from(secs)
                    .ok()
                    .and_then(chrono::Duration::try_seconds)
                    .filter(|d| *d <= max)
                    .ok_or_else(|| {
                        invalid(
                            "delay_seconds",
                            format!("must be at most {} seconds", MAX_DELAY.as_secs()),
                        )
                    })?;
                ("delay_seconds", now + delay)
            }
        };
        if at > now + max {
            return Err(invalid(
                field,
                format!(
                    "must be at most {} days ahead",
                    MAX_DELAY.as_secs() / 86_400
                ),
            ));
        }
        if at < now - tolerance {
            return Err(invalid(
                field,
                format!(
                    "is {}s in the past (at most {}s is accepted, meaning now)",
                    (now - at).num_seconds(),
                    PAST_TOLERANCE.as_secs()
                ),
            ));
        }
        Ok((at > now).then_some(at))
    }
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
/// Roots all in one queue: a static INSERT on its table (`{steps}`), ranked
/// and parked like `tasker.send_step_messages` does.
const SEND_ROOTS_TO_ONE_QUEUE: &str = "INSERT INTO {steps} (vt, message, headers)
     SELECT CASE WHEN EXISTS (SELECT 1 FROM tasker.pauses)
                  AND tasker.paused($3, (SELECT name FROM tasker.templates WHERE id = $2), NULL)
                 THEN 'infinity' ELSE coalesce($24::timestamptz, clock_timestamp()) END,
            (m - 'priority' - 'traceparent') || jsonb_build_object('rank',
                extract(epoch FROM coalesce($24::timestamptz, clock_timestamp())) - $5),
            jsonb_build_object('traceparent', $33::text)
       FROM task, unnest($21::jsonb[]) AS x(m) RETURNING 1";
/// Roots in several queues (pools): one call, one INSERT per queue.
const SEND_ROOTS_TO_QUEUES: &str =
    "SELECT tasker.send_step_messages($23::text[], $21::jsonb[], $24::timestamptz) FROM task";

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
    create_at(pool, templates, req, &Start::default(), processor_id).await
}

/// [`create`] with a delayed start: its roots' messages are sent visible
/// from the start's instant (refused, with nothing written, when invalid).
pub async fn create_at(
    pool: &PgPool,
    templates: &TemplateCache,
    req: &NewTask,
    start: &Start,
    processor_id: &str,
) -> Result<(Created, Changed), StoreError> {
    let run_at = start.resolve(Utc::now())?;
    // The template first: reading it may take a connection of its own, which
    // must not wait while this call holds another (a small pool would run
    // dry under concurrent creations).
    let loaded = templates
        .get(pool, &req.namespace, &req.name, req.version.as_deref())
        .await?;
    let mut conn = pool.acquire().await?;
    create_on(&mut conn, &loaded, req, run_at, None, processor_id).await
}

/// [`create`] on `conn` (e.g. inside the caller's transaction) from the
/// `loaded` template `req` names, its roots visible from `run_at` (`None`:
/// at once, else a resolved [`Start`]), recording `schedule_id` as the
/// schedule that fired it.
pub async fn create_on(
    conn: &mut PgConnection,
    loaded: &crate::template::Loaded,
    req: &NewTask,
    run_at: Option<DateTime<Utc>>,
    schedule_id: Option<Uuid>,
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
    // Concurrency limits: a root under one is created held (pending) and
    // admitted after the insert (`crate::concurrency`).
    let groups = crate::concurrency::groups(template, &req.context);
    let states: Vec<&str> = template
        .steps
        .iter()
        .map(|s| match (s.depends_on.is_empty(), &s.wait) {
            (false, _) => StepState::Pending.as_str(),
            _ if s.concurrency.is_some() || groups.task.is_some() => StepState::Pending.as_str(),
            // A wait root begins to wait: no message (`sql/create_task.sql`).
            (true, Some(_)) => StepState::Waiting.as_str(),
            (true, None) => StepState::Enqueued.as_str(),
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
    let roots: Vec<Uuid> = (0..ids.len())
        .filter(|&i| states[i] != StepState::Pending.as_str())
        .map(|i| ids[i])
        .collect();
    // The roots that get a message: not the wait roots.
    let root_index: Vec<usize> = (0..ids.len())
        .filter(|&i| states[i] == StepState::Enqueued.as_str())
        .collect();
    let root_queues: Vec<&str> = root_index.iter().map(|&i| queues[i].as_str()).collect();
    // `priority` becomes the message's `rank` as it is sent (the task row is
    // not visible to `tasker.send_step_messages` within this statement).
    // The task's trace: the submission's, or a new one (a malformed value is
    // no trace, as W3C Trace Context says). The roots' messages carry it in
    // their headers (a message key here, moved there as it is sent).
    let traceparent = req
        .traceparent
        .as_deref()
        .and_then(Traceparent::parse)
        .unwrap_or_else(Traceparent::new_root)
        .to_string();
    let messages: Vec<Value> = root_index
        .iter()
        .map(|&i| &ids[i])
        .map(|id| {
            serde_json::json!({"step_id": id, "task_id": task_id, "priority": req.priority,
                               "traceparent": traceparent})
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
        .bind(run_at)
        .bind(schedule_id)
        .bind(
            template
                .steps
                .iter()
                .map(|s| s.wait.as_ref().and_then(|w| w.signal()))
                .collect::<Vec<_>>(),
        )
        .bind(
            template
                .steps
                .iter()
                .map(|s| s.wait.as_ref().map(|w| w.seconds() as i32))
                .collect::<Vec<_>>(),
        )
        .bind(&groups.steps)
        .bind(&groups.step_limits)
        .bind(groups.task.as_ref().map(|t| t.0.as_str()))
        .bind(groups.task.as_ref().map(|t| t.1))
        .bind(groups.task.as_ref().map(|t| t.2.as_str()))
        .bind(&traceparent)
        .fetch_optional(&mut *conn)
        .await?;
    if inserted.is_none() {
        let existing: Uuid = sqlx::query_scalar(
            "SELECT id FROM tasker.tasks WHERE namespace = $1 AND idempotency_key = $2",
        )
        .bind(&template.namespace)
        .bind(&req.idempotency_key)
        .fetch_one(&mut *conn)
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
    if groups.task.is_some() || groups.steps.iter().any(Option::is_some) {
        changed.merge(
            crate::concurrency::admit_created(&mut *conn, task_id, &groups, processor_id).await?,
        );
    }
    Ok((created, changed))
}
