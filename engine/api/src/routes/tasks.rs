//! Task routes: create, list (filters, cursor pages), get, cancel.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use uuid::Uuid;

use super::body::{optional_body, reject_nul};
use super::processor_id;
use crate::error::{ErrorBody, HttpError};
use crate::extract::{ApiPath, ApiQuery, ExactJson};
use crate::keys::Principal;
use crate::types::*;
use crate::ApiState;
use tasker_model::state::TaskState;
use tasker_store::operator::{self, Actor};
use tasker_store::task::{self, TaskFilter};

/// Largest page of `GET /v1/tasks`.
pub const MAX_PAGE: i64 = 500;

/// Page size when `limit` is absent.
pub const DEFAULT_PAGE: i64 = 50;

/// A listing's `limit`: [`DEFAULT_PAGE`] when absent, else 1..=[`MAX_PAGE`]
/// (422 naming `limit`).
pub fn page_limit(limit: Option<i64>) -> Result<i64, HttpError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            HttpError::unprocessable(format!("limit must be 1..={MAX_PAGE}, got {limit}"))
                .with_details(serde_json::json!({"field": "limit"})),
        );
    }
    Ok(limit)
}

/// Creates a task from a registered template.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks",
    request_body = CreateTaskRequest,
    responses(
        (status = 201, description = "Task created", body = CreatedTask),
        (status = 200, description = "A task with this idempotency key already exists", body = CreatedTask),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "Template not registered", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid body, input rejected by the template's schema, or an invalid delayed start (`run_at` and `delay_seconds` both, more than a year ahead, `run_at` past)", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:create"])))]
pub async fn create_task(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: axum::http::HeaderMap,
    ExactJson(req): ExactJson<CreateTaskRequest>,
) -> Result<impl IntoResponse, HttpError> {
    // The task's trace begins here, continuing the caller's (W3C
    // `traceparent` header) when it sent one.
    let mut span = tasker_trace::Span::start(
        "tasker.task.create",
        tasker_trace::SpanKind::Server,
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
        || {
            vec![
                tasker_trace::KeyValue::new("tasker.namespace", req.namespace.clone()),
                tasker_trace::KeyValue::new("tasker.template", req.name.clone()),
            ]
        },
    );
    let created = create(&state, &who, req, span.traceparent()).await;
    match &created {
        Ok(c) => span.set(tasker_trace::KeyValue::new(
            "tasker.task_id",
            c.task_id.to_string(),
        )),
        Err(e) => span.fail(e.to_string()),
    }
    span.end();
    let created = created?;
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(created)))
}

/// [`create_task`] within its span (`traceparent`).
async fn create(
    state: &ApiState,
    who: &Principal,
    req: CreateTaskRequest,
    traceparent: &str,
) -> Result<task::Created, HttpError> {
    reject_nul(&req)?;
    crate::scope::check(who, &req.namespace)?;
    let start = req.start();
    // Refused before anything is read: both given, too far ahead or past.
    start.resolve(chrono::Utc::now())?;
    let mut req: tasker_store::task::NewTask = req.into();
    req.traceparent = Some(traceparent.to_string());
    let loaded = state
        .templates
        .get(
            &state.pool,
            &req.namespace,
            &req.name,
            req.version.as_deref(),
        )
        .await?;
    let unserved = super::workers::unserved_steps_of(state, &loaded).await?;
    let (mut created, changed) = task::create_at(
        &state.pool,
        &state.templates,
        &req,
        &start,
        &processor_id(who),
    )
    .await?;
    state.wakeups.announce(&changed);
    created.unserved = unserved;
    Ok(created)
}

/// Creates up to 1,000 tasks in one transaction: all of them, or none when
/// one is refused (the error names it: `tasks[i]: ...`, `details.index`).
/// Each task is as `POST /v1/tasks` takes it; one commit for the batch makes
/// this several times faster per task under load. The tasks share the
/// request's trace.
#[utoipa::path(post, path = "/v1/tasks/batch", tag = "tasks",
    request_body = CreateTasksRequest,
    responses(
        (status = 201, description = "Tasks created (some may be earlier tasks with the same idempotency key: `created: false`)", body = CreatedTasks),
        (status = 200, description = "Every task already existed with its idempotency key", body = CreatedTasks),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "A task's template is not registered; nothing was created", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "No task or more than 1,000, or a task refused as `POST /v1/tasks` would refuse it; nothing was created", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:create"])))]
pub async fn create_tasks(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: axum::http::HeaderMap,
    ExactJson(req): ExactJson<CreateTasksRequest>,
) -> Result<impl IntoResponse, HttpError> {
    let n = req.tasks.len();
    let mut span = tasker_trace::Span::start(
        "tasker.task.create",
        tasker_trace::SpanKind::Server,
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
        || vec![tasker_trace::KeyValue::new("tasker.batch_size", n as i64)],
    );
    let created = create_batch(&state, &who, req, span.traceparent()).await;
    if let Err(e) = &created {
        span.fail(e.to_string());
    }
    span.end();
    let created = created?;
    let status = if created.iter().any(|c| c.created) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(CreatedTasks { tasks: created })))
}

/// [`create_tasks`] within its span (`traceparent`).
async fn create_batch(
    state: &ApiState,
    who: &Principal,
    req: CreateTasksRequest,
    traceparent: &str,
) -> Result<Vec<task::Created>, HttpError> {
    // A NUL anywhere is named by its path (`tasks[3].context.x`).
    reject_nul(&req)?;
    if req.tasks.is_empty() || req.tasks.len() > task::MAX_BATCH {
        return Err(HttpError::unprocessable(format!(
            "tasks must hold 1..={} tasks, got {}",
            task::MAX_BATCH,
            req.tasks.len()
        ))
        .with_details(serde_json::json!({"field": "tasks"})));
    }
    let mut batch = Vec::with_capacity(req.tasks.len());
    let mut unserved = Vec::with_capacity(req.tasks.len());
    for (i, t) in req.tasks.into_iter().enumerate() {
        crate::scope::check(who, &t.namespace).map_err(|e| e.in_batch(i))?;
        let start = t.start();
        let mut t: task::NewTask = t.into();
        t.traceparent = Some(traceparent.to_string());
        let loaded = state
            .templates
            .get(&state.pool, &t.namespace, &t.name, t.version.as_deref())
            .await
            .map_err(|e| HttpError::from(e).in_batch(i))?;
        unserved.push(
            super::workers::unserved_steps_of(state, &loaded)
                .await
                .map_err(|e| e.in_batch(i))?,
        );
        batch.push((t, start));
    }
    let (mut created, changed) =
        task::create_batch(&state.pool, &state.templates, &batch, &processor_id(who)).await?;
    state.wakeups.announce(&changed);
    for (c, u) in created.iter_mut().zip(unserved) {
        c.unserved = u;
    }
    Ok(created)
}

/// Lists tasks, newest first, with filters and cursor pagination. Tasks are
/// summaries: their contexts only with `include_context=true`, and then a
/// page ends early once it carries `web.list_payload_limit_bytes` of them.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks",
    params(ListTasksParams),
    responses(
        (status = 200, description = "A page of tasks", body = TaskPage),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
        (status = 422, description = "Invalid filter value (a date out of range, created_after later than created_before, ...)", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_tasks(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiQuery(params): ApiQuery<ListTasksParams>,
) -> Result<Json<TaskPage>, HttpError> {
    let limit = page_limit(params.limit)?;
    if let Some(s) = &params.state {
        s.parse::<TaskState>().map_err(|e| {
            HttpError::unprocessable(format!("state: {e}"))
                .with_details(serde_json::json!({"field": "state"}))
        })?;
    }
    for (field, value) in [
        ("created_after", &params.created_after),
        ("created_before", &params.created_before),
    ] {
        if let Some(value) = value {
            crate::ops::check_instant(field, value)?;
        }
    }
    if let (Some(after), Some(before)) = (&params.created_after, &params.created_before) {
        if after > before {
            return Err(HttpError::unprocessable(format!(
                "created_after ({}) is later than created_before ({})",
                after.to_rfc3339(),
                before.to_rfc3339()
            ))
            .with_details(serde_json::json!({"field": "created_after"})));
        }
    }
    let filter = TaskFilter {
        namespaces: crate::scope::list_filter(&who, params.namespace.as_deref())?,
        namespace: params.namespace,
        state: params.state,
        template: params.template,
        created_after: params.created_after,
        created_before: params.created_before,
        cursor: params.cursor,
    };
    let mut rows = task::list(&state.pool, &filter, limit + 1).await?;
    let mut more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if params.include_context == Some(true) {
        let ids: Vec<Uuid> = rows.iter().map(|t| t.id).collect();
        let contexts =
            task::contexts_within(&state.pool, &ids, state.list_payload_limit_bytes).await?;
        if contexts.len() < rows.len() {
            rows.truncate(contexts.len());
            more = true;
        }
        for (row, context) in rows.iter_mut().zip(contexts) {
            row.context = context;
        }
    }
    let next_cursor = if more {
        rows.last().map(|t| t.id)
    } else {
        None
    };
    Ok(Json(TaskPage {
        tasks: rows,
        next_cursor,
    }))
}

/// A task with its steps and DAG edges.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task", body = TaskDetailBody),
        (status = 400, description = "Invalid task id", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn get_task(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TaskDetailBody>, HttpError> {
    let budget = state.list_payload_limit_bytes;
    Ok(Json(task::detail_within(&state.pool, id, budget).await?))
}

/// Cancels a task and every unfinished step.
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    request_body(content = Option<ActionRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "Cancelled", body = ActionResult),
        (status = 400, description = "Invalid task id or malformed JSON", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "The task has already finished", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:cancel"])))]
pub async fn cancel_task(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    body: Bytes,
) -> Result<Json<ActionResult>, HttpError> {
    let req: ActionRequest = optional_body(&body)?;
    let pid = processor_id(&who);
    let actor = Actor {
        processor_id: &pid,
        reason: req.reason.as_deref(),
    };
    let (next, changed) = operator::cancel_task(&state.pool, id, actor).await?;
    state.wakeups.announce(&changed);
    Ok(Json(ActionResult {
        task_id: id,
        step_id: None,
        task_state: next.to_string(),
    }))
}
