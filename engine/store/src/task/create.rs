//! Creating tasks: one statement (`sql/create_task.sql`) for one task or a
//! batch, so one round trip; [`Creation`] lays the tasks out as its arrays.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Created, NewTask, Start, MAX_IDEMPOTENCY_KEY};
use crate::concurrency::Groups;
use crate::queue;
use crate::template::{Loaded, TemplateCache};
use crate::StoreError;
use tasker_model::change::Changed;
use tasker_model::state::StepState;
use tasker_model::trace::Traceparent;

/// Creates tasks: [`create_many_on`]'s statement; `{send_roots}` is one of the two below.
const CREATE_TASK: &str = crate::sql::body(include_str!("../sql/create_task.sql"));
/// Roots all in one queue: a static INSERT on its table (`{steps}`), ranked
/// and parked like `tasker.send_step_messages` does.
const SEND_ROOTS_TO_ONE_QUEUE: &str = "INSERT INTO {steps} (vt, message, headers)
     SELECT CASE WHEN EXISTS (SELECT 1 FROM tasker.pauses)
                  AND tasker.paused(r.namespace,
                                    (SELECT name FROM tasker.templates WHERE id = r.template_id), NULL)
                 THEN 'infinity' ELSE coalesce(r.run_at, clock_timestamp()) END,
            jsonb_build_object('step_id', r.id, 'task_id', r.task_id, 'rank',
                extract(epoch FROM coalesce(r.run_at, clock_timestamp())) - r.priority),
            jsonb_build_object('traceparent', r.traceparent)
       FROM roots r RETURNING 1";
/// Roots in several queues (pools): one call, one INSERT per queue; each
/// message carries its task's priority, trace and start (the task rows are
/// not visible to the function within this statement).
const SEND_ROOTS_TO_QUEUES: &str = "SELECT tasker.send_step_messages(
         array_agg(r.queue ORDER BY r.queue, r.id),
         array_agg(jsonb_build_object('step_id', r.id, 'task_id', r.task_id,
                                      'priority', r.priority, 'traceparent', r.traceparent,
                                      'run_at', r.run_at) ORDER BY r.queue, r.id))
       FROM roots r";

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
    loaded: &Loaded,
    req: &NewTask,
    run_at: Option<DateTime<Utc>>,
    schedule_id: Option<Uuid>,
    processor_id: &str,
) -> Result<(Created, Changed), StoreError> {
    let task = Planned {
        loaded,
        req,
        run_at,
        schedule_id,
    };
    let (mut created, changed) = create_many_on(conn, &[task], processor_id)
        .await
        .map_err(|(_, e)| e)?;
    Ok((created.remove(0), changed))
}

/// One task to create: its template, its request, its resolved start and the
/// schedule that fired it.
pub(crate) struct Planned<'a> {
    pub loaded: &'a Loaded,
    pub req: &'a NewTask,
    pub run_at: Option<DateTime<Utc>>,
    pub schedule_id: Option<Uuid>,
}

/// Creates `tasks` on `conn` in one statement (in the caller's transaction,
/// if any), then admits those under concurrency limits. Returns one
/// [`Created`] per task, in order; or the error, with the position of the
/// task it is about (`None`: the statement's, no one task's).
pub(crate) async fn create_many_on(
    conn: &mut PgConnection,
    tasks: &[Planned<'_>],
    processor_id: &str,
) -> Result<(Vec<Created>, Changed), (Option<usize>, StoreError)> {
    let mut rows = Creation::default();
    let mut laid_out = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        laid_out.push(rows.add(t).map_err(|e| (Some(i), e))?);
    }
    // Every root in one queue (the common case): the static send.
    let sql = match rows.root_queues.split_first() {
        Some((first, rest)) if rest.iter().all(|q| q == first) => queue::substitute(
            &CREATE_TASK.replace("{send_roots}", SEND_ROOTS_TO_ONE_QUEUE),
            first,
        )
        .map_err(|e| (None, e.into()))?,
        _ => CREATE_TASK.replace("{send_roots}", SEND_ROOTS_TO_QUEUES),
    };
    let inserted: Vec<Uuid> = rows
        .bind(sqlx::query_scalar(&sql), processor_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| (None, e.into()))?;
    // A task not inserted has an idempotency key that exists already (or
    // came earlier in the batch): it is that task.
    let existing: Vec<(String, String, Uuid)> = if inserted.len() < tasks.len() {
        sqlx::query_as(
            "SELECT t.namespace, t.idempotency_key, t.id FROM tasker.tasks t
               JOIN unnest($1::text[], $2::text[]) AS k(namespace, key)
                 ON t.namespace = k.namespace AND t.idempotency_key = k.key",
        )
        .bind(&rows.namespaces)
        .bind(&rows.idempotency_keys)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| (None, e.into()))?
    } else {
        Vec::new()
    };
    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
    let mut created = Vec::with_capacity(tasks.len());
    let mut changed = Changed::none();
    for (i, (t, out)) in tasks.iter().zip(laid_out).enumerate() {
        if !inserted.contains(&out.task_id) {
            let key = t.req.idempotency_key.as_deref();
            let found = existing
                .iter()
                .find(|(ns, k, _)| *ns == t.loaded.template.namespace && Some(k.as_str()) == key)
                .map(|(_, _, id)| *id)
                .ok_or_else(|| {
                    (
                        Some(i),
                        StoreError::Corrupt(format!(
                            "task {} was neither created nor found by its key",
                            out.task_id
                        )),
                    )
                })?;
            created.push(Created {
                task_id: found,
                created: false,
                unserved: Vec::new(),
            });
            continue;
        }
        for q in out.root_queues {
            changed = changed.with_queue(q);
        }
        if out.groups.task.is_some() || out.groups.steps.iter().any(Option::is_some) {
            let admitted = crate::concurrency::admit_created(
                &mut *conn,
                out.task_id,
                &out.groups,
                processor_id,
            )
            .await
            .map_err(|e| (Some(i), e))?;
            changed.merge(admitted);
        }
        created.push(Created {
            task_id: out.task_id,
            created: true,
            unserved: Vec::new(),
        });
    }
    Ok((created, changed))
}

/// What [`Creation::add`] keeps of a task for after the statement.
struct LaidOut {
    task_id: Uuid,
    root_queues: Vec<String>,
    groups: Groups,
}

/// The arrays of `sql/create_task.sql`: per task, per step, per edge.
#[derive(Default)]
struct Creation {
    ids: Vec<Uuid>,
    template_ids: Vec<i64>,
    namespaces: Vec<String>,
    contexts: Vec<Value>,
    priorities: Vec<i32>,
    idempotency_keys: Vec<Option<String>>,
    run_ats: Vec<Option<DateTime<Utc>>>,
    schedule_ids: Vec<Option<Uuid>>,
    task_groups: Vec<Option<String>>,
    task_limits: Vec<Option<i32>>,
    task_strategies: Vec<Option<&'static str>>,
    traceparents: Vec<String>,
    step_tasks: Vec<Uuid>,
    step_ids: Vec<Uuid>,
    names: Vec<String>,
    handlers: Vec<String>,
    versions: Vec<Option<String>>,
    configs: Vec<Value>,
    retries: Vec<Value>,
    max_attempts: Vec<i32>,
    timeouts: Vec<i32>,
    parents: Vec<i32>,
    states: Vec<&'static str>,
    pools: Vec<String>,
    wait_signals: Vec<Option<String>>,
    wait_seconds: Vec<Option<i32>>,
    step_groups: Vec<Option<String>>,
    step_limits: Vec<Option<i32>>,
    edge_tasks: Vec<Uuid>,
    edge_parents: Vec<Uuid>,
    edge_children: Vec<Uuid>,
    /// Every root message's queue, for the choice of the send.
    root_queues: Vec<String>,
}

impl Creation {
    /// Checks one task (idempotency key, input schema) and adds its rows.
    fn add(&mut self, t: &Planned<'_>) -> Result<LaidOut, StoreError> {
        let (req, template) = (t.req, &t.loaded.template);
        if let Some(key) = &req.idempotency_key {
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
                return Err(StoreError::InvalidRequest {
                    field: "idempotency_key".into(),
                    reason: format!("must be 1..={MAX_IDEMPOTENCY_KEY} bytes"),
                });
            }
        }
        t.loaded
            .input
            .validate(&req.context)
            .map_err(|source| StoreError::InputRejected {
                key: template.key(),
                source,
            })?;
        let task_id = Uuid::now_v7();
        let ids: Vec<Uuid> = template.steps.iter().map(|_| Uuid::now_v7()).collect();
        // Step index by name: one lookup per edge, whatever the template's size.
        let by_name: std::collections::HashMap<&str, usize> = template
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        // Concurrency limits: a root under one is created held (pending) and
        // admitted after the insert (`crate::concurrency`).
        let groups = crate::concurrency::groups(template, &req.context);
        let mut root_queues = Vec::new();
        for (i, step) in template.steps.iter().enumerate() {
            let pool = template.pool_of(step);
            // Every step's queue name is checked, though only roots send now.
            let q = queue::step_queue(pool)?;
            let state = match (step.depends_on.is_empty(), &step.wait) {
                (false, _) => StepState::Pending.as_str(),
                _ if step.concurrency.is_some() || groups.task.is_some() => {
                    StepState::Pending.as_str()
                }
                // A wait root begins to wait: no message (`sql/create_task.sql`).
                (true, Some(_)) => StepState::Waiting.as_str(),
                (true, None) => StepState::Enqueued.as_str(),
            };
            if state == StepState::Enqueued.as_str() {
                if !root_queues.contains(&q) {
                    root_queues.push(q.clone());
                }
                self.root_queues.push(q);
            }
            for dep in &step.depends_on {
                let p = by_name
                    .get(dep.as_str())
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown dependency {dep}")))?;
                self.edge_tasks.push(task_id);
                self.edge_parents.push(ids[*p]);
                self.edge_children.push(ids[i]);
            }
            self.step_tasks.push(task_id);
            self.step_ids.push(ids[i]);
            self.names.push(step.name.clone());
            self.handlers.push(step.handler.name.clone());
            self.versions.push(step.handler.version.clone());
            self.configs.push(step.handler.config.clone());
            self.retries.push(
                serde_json::to_value(&step.retry)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
            self.max_attempts.push(step.retry.max_attempts as i32);
            self.timeouts.push(step.timeout_seconds as i32);
            self.parents.push(step.depends_on.len() as i32);
            self.states.push(state);
            self.pools.push(pool.to_string());
            self.wait_signals.push(
                step.wait
                    .as_ref()
                    .and_then(|w| w.signal())
                    .map(str::to_string),
            );
            self.wait_seconds
                .push(step.wait.as_ref().map(|w| w.seconds() as i32));
        }
        self.step_groups.extend(groups.steps.iter().cloned());
        self.step_limits.extend(groups.step_limits.iter().copied());
        // The task's trace: the submission's, or a new one (a malformed value
        // is no trace, as W3C Trace Context says).
        let traceparent = req
            .traceparent
            .as_deref()
            .and_then(Traceparent::parse)
            .unwrap_or_else(Traceparent::new_root)
            .to_string();
        self.ids.push(task_id);
        self.template_ids.push(t.loaded.id);
        self.namespaces.push(template.namespace.clone());
        self.contexts.push(req.context.clone());
        self.priorities.push(req.priority);
        self.idempotency_keys.push(req.idempotency_key.clone());
        self.run_ats.push(t.run_at);
        self.schedule_ids.push(t.schedule_id);
        self.task_groups
            .push(groups.task.as_ref().map(|g| g.0.clone()));
        self.task_limits.push(groups.task.as_ref().map(|g| g.1));
        self.task_strategies
            .push(groups.task.as_ref().map(|g| g.2.as_str()));
        self.traceparents.push(traceparent);
        Ok(LaidOut {
            task_id,
            root_queues,
            groups,
        })
    }

    /// Binds the arrays to `sql/create_task.sql`'s parameters, in order.
    fn bind<'q, O>(
        &'q self,
        q: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
        processor_id: &'q str,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        q.bind(&self.ids)
            .bind(&self.template_ids)
            .bind(&self.namespaces)
            .bind(&self.contexts)
            .bind(&self.priorities)
            .bind(&self.idempotency_keys)
            .bind(&self.run_ats)
            .bind(&self.schedule_ids)
            .bind(&self.task_groups)
            .bind(&self.task_limits)
            .bind(&self.task_strategies)
            .bind(&self.traceparents)
            .bind(processor_id)
            .bind(&self.step_tasks)
            .bind(&self.step_ids)
            .bind(&self.names)
            .bind(&self.handlers)
            .bind(&self.versions)
            .bind(&self.configs)
            .bind(&self.retries)
            .bind(&self.max_attempts)
            .bind(&self.timeouts)
            .bind(&self.parents)
            .bind(&self.states)
            .bind(&self.pools)
            .bind(&self.wait_signals)
            .bind(&self.wait_seconds)
            .bind(&self.step_groups)
            .bind(&self.step_limits)
            .bind(&self.edge_tasks)
            .bind(&self.edge_parents)
            .bind(&self.edge_children)
    }
}
