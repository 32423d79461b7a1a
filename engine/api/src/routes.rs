//! The route handlers, each annotated for OpenAPI.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use uuid::Uuid;

use super::error::{parse_json, ErrorBody, HttpError};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::keys::Principal;
use super::types::*;
use super::ApiState;
use tasker_model::state::TaskState;
use tasker_model::template::Template;
use tasker_store::operator::{self, Actor};
use tasker_store::queue;
use tasker_store::step as sstore;
use tasker_store::task::{self, TaskFilter};
use tasker_store::template as tstore;

/// Largest page of `GET /v1/tasks`.
pub const MAX_PAGE: i64 = 500;
/// Page size when `limit` is absent.
pub const DEFAULT_PAGE: i64 = 50;

fn processor_id(p: &Principal) -> String {
    format!("api:{}", p.name)
}

/// An optional JSON body: empty (or `null`) means the default.
fn optional_body<T>(body: &Bytes) -> Result<T, HttpError>
where
    T: serde::de::DeserializeOwned + serde::Serialize + Default,
{
    if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        return Ok(T::default());
    }
    let parsed = parse_json(body)?;
    reject_nul(&parsed)?;
    Ok(parsed)
}

/// PostgreSQL cannot store a NUL character in text or `jsonb`: a body that
/// carries one (`"\u0000"`) is rejected with 422 naming the field, before it
/// reaches the database.
fn reject_nul<T: serde::Serialize>(body: &T) -> Result<(), HttpError> {
    let value = serde_json::to_value(body).map_err(|e| HttpError::internal(&e))?;
    match nul_path(&value, "") {
        None => Ok(()),
        Some(field) => Err(HttpError::unprocessable(format!(
            "{field} contains a NUL character (\\u0000), which cannot be stored"
        ))
        .with_details(serde_json::json!({ "field": field }))),
    }
}

/// The path of the first string or key holding a NUL character.
fn nul_path(v: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value as V;
    match v {
        V::String(s) => s.contains('\0').then(|| at.to_string()),
        V::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_path(x, &format!("{at}[{i}]"))),
        V::Object(map) => map.iter().find_map(|(k, x)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_path(x, &here)
            }
        }),
        _ => None,
    }
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
        (status = 422, description = "Invalid body or input rejected by the template's schema", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:create"])))]
pub async fn create_task(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiJson(req): ApiJson<CreateTaskRequest>,
) -> Result<impl IntoResponse, HttpError> {
    reject_nul(&req)?;
    let created = task::create(
        &state.pool,
        &state.templates,
        &req.into(),
        &processor_id(&who),
    )
    .await?;
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(created)))
}

/// Lists tasks, newest first, with filters and cursor pagination.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks",
    params(ListTasksParams),
    responses(
        (status = 200, description = "A page of tasks", body = TaskPage),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
        (status = 422, description = "Invalid filter value", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_tasks(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<ListTasksParams>,
) -> Result<Json<TaskPage>, HttpError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            HttpError::unprocessable(format!("limit must be 1..={MAX_PAGE}, got {limit}"))
                .with_details(serde_json::json!({"field": "limit"})),
        );
    }
    if let Some(s) = &params.state {
        s.parse::<TaskState>().map_err(|e| {
            HttpError::unprocessable(format!("state: {e}"))
                .with_details(serde_json::json!({"field": "state"}))
        })?;
    }
    let filter = TaskFilter {
        namespace: params.namespace,
        state: params.state,
        template: params.template,
        created_after: params.created_after,
        created_before: params.created_before,
        cursor: params.cursor,
    };
    let mut rows = task::list(&state.pool, &filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
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
    Ok(Json(task::detail(&state.pool, id).await?))
}

/// The steps of a task, in creation order.
#[utoipa::path(get, path = "/v1/tasks/{id}/steps", tag = "steps",
    params(("id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task's steps", body = Vec<Step>),
        (status = 400, description = "Invalid task id", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_steps(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Vec<Step>>, HttpError> {
    Ok(Json(task::detail(&state.pool, id).await?.steps))
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
    let next = operator::cancel_task(&state.pool, id, actor).await?;
    Ok(Json(ActionResult {
        task_id: id,
        step_id: None,
        task_state: next.to_string(),
    }))
}

async fn resolve_step(state: &ApiState, task_id: Uuid, step: &str) -> Result<Step, HttpError> {
    if task::state(&state.pool, task_id).await?.is_none() {
        return Err(HttpError::not_found(format!("task {task_id} not found")));
    }
    sstore::find(&state.pool, task_id, step)
        .await?
        .ok_or_else(|| HttpError::not_found(format!("task {task_id} has no step '{step}'")))
}

/// One step of a task, by step id or step name.
#[utoipa::path(get, path = "/v1/tasks/{id}/steps/{step}", tag = "steps",
    params(("id" = Uuid, Path, description = "Task id"),
           ("step" = String, Path, description = "Step id or step name")),
    responses(
        (status = 200, description = "The step", body = Step),
        (status = 400, description = "Invalid task id", body = ErrorBody),
        (status = 404, description = "No such task or step", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn get_step(
    State(state): State<ApiState>,
    ApiPath((id, step)): ApiPath<(Uuid, String)>,
) -> Result<Json<Step>, HttpError> {
    Ok(Json(resolve_step(&state, id, &step).await?))
}

/// A step's transition history, oldest first.
#[utoipa::path(get, path = "/v1/tasks/{id}/steps/{step}/transitions", tag = "steps",
    params(("id" = Uuid, Path, description = "Task id"),
           ("step" = String, Path, description = "Step id or step name")),
    responses(
        (status = 200, description = "The transitions", body = Vec<StepTransition>),
        (status = 400, description = "Invalid task id", body = ErrorBody),
        (status = 404, description = "No such task or step", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn step_transitions(
    State(state): State<ApiState>,
    ApiPath((id, step)): ApiPath<(Uuid, String)>,
) -> Result<Json<Vec<StepTransition>>, HttpError> {
    let step = resolve_step(&state, id, &step).await?;
    Ok(Json(sstore::transitions(&state.pool, step.id).await?))
}

/// Retries a failed step: its attempts restart and it is enqueued again.
#[utoipa::path(post, path = "/v1/tasks/{id}/steps/{step}/retry", tag = "steps",
    params(("id" = Uuid, Path, description = "Task id"),
           ("step" = String, Path, description = "Step id or step name")),
    request_body(content = Option<ActionRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "Re-enqueued", body = ActionResult),
        (status = 400, description = "Invalid task id or malformed JSON", body = ErrorBody),
        (status = 404, description = "No such task or step", body = ErrorBody),
        (status = 409, description = "The step has not failed, or the task has finished", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    ),
    security(("bearer" = ["steps:resolve"])))]
pub async fn retry_step(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath((id, step)): ApiPath<(Uuid, String)>,
    body: Bytes,
) -> Result<Json<ActionResult>, HttpError> {
    let req: ActionRequest = optional_body(&body)?;
    let step = resolve_step(&state, id, &step).await?;
    let pid = processor_id(&who);
    let actor = Actor {
        processor_id: &pid,
        reason: req.reason.as_deref(),
    };
    let next = operator::retry_step(&state.pool, id, step.id, actor).await?;
    Ok(Json(ActionResult {
        task_id: id,
        step_id: Some(step.id),
        task_state: next.to_string(),
    }))
}

/// Resolves a step manually; its children may then run.
#[utoipa::path(post, path = "/v1/tasks/{id}/steps/{step}/resolve", tag = "steps",
    params(("id" = Uuid, Path, description = "Task id"),
           ("step" = String, Path, description = "Step id or step name")),
    request_body(content = Option<ActionRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "Resolved", body = ActionResult),
        (status = 400, description = "Invalid task id or malformed JSON", body = ErrorBody),
        (status = 404, description = "No such task or step", body = ErrorBody),
        (status = 409, description = "The step cannot be resolved from its state", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    ),
    security(("bearer" = ["steps:resolve"])))]
pub async fn resolve_step_manually(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath((id, step)): ApiPath<(Uuid, String)>,
    body: Bytes,
) -> Result<Json<ActionResult>, HttpError> {
    let req: ActionRequest = optional_body(&body)?;
    finish(&state, &who, id, &step, None, req.reason.as_deref()).await
}

/// Completes a step manually with the given result.
#[utoipa::path(post, path = "/v1/tasks/{id}/steps/{step}/complete", tag = "steps",
    params(("id" = Uuid, Path, description = "Task id"),
           ("step" = String, Path, description = "Step id or step name")),
    request_body = CompleteStepRequest,
    responses(
        (status = 200, description = "Completed", body = ActionResult),
        (status = 400, description = "Invalid task id or malformed JSON", body = ErrorBody),
        (status = 404, description = "No such task or step", body = ErrorBody),
        (status = 409, description = "The step cannot be completed from its state", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    ),
    security(("bearer" = ["steps:resolve"])))]
pub async fn complete_step(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath((id, step)): ApiPath<(Uuid, String)>,
    ApiJson(req): ApiJson<CompleteStepRequest>,
) -> Result<Json<ActionResult>, HttpError> {
    reject_nul(&req)?;
    finish(
        &state,
        &who,
        id,
        &step,
        Some(req.result),
        req.reason.as_deref(),
    )
    .await
}

async fn finish(
    state: &ApiState,
    who: &Principal,
    id: Uuid,
    step: &str,
    result: Option<serde_json::Value>,
    reason: Option<&str>,
) -> Result<Json<ActionResult>, HttpError> {
    let step = resolve_step(state, id, step).await?;
    let pid = processor_id(who);
    let actor = Actor {
        processor_id: &pid,
        reason,
    };
    let next = operator::finish_step(&state.pool, id, step.id, result, actor).await?;
    Ok(Json(ActionResult {
        task_id: id,
        step_id: Some(step.id),
        task_state: next.to_string(),
    }))
}

/// Parses a template body: YAML for `application/yaml` / `text/yaml`
/// (and `application/x-yaml`), JSON otherwise.
fn parse_template(headers: &HeaderMap, body: &Bytes) -> Result<Template, HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_yaml = matches!(
        content_type.as_str(),
        "application/yaml" | "text/yaml" | "application/x-yaml" | "text/x-yaml"
    );
    let result = if is_yaml {
        let text = std::str::from_utf8(body)
            .map_err(|e| HttpError::bad_request(format!("template body is not UTF-8: {e}")))?;
        Template::from_yaml_str(text, "<request body>")
    } else {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {e}"),
            )
        })?;
        Template::from_json_value(value)
    };
    result.map_err(|e| HttpError::unprocessable(e.to_string()))
}

fn levels(t: &Template) -> Vec<StepLevel> {
    t.levels()
        .into_iter()
        .map(|(step, level)| StepLevel { step, level })
        .collect()
}

/// Registers a template version (YAML or JSON). Versions are immutable.
#[utoipa::path(post, path = "/v1/templates", tag = "templates",
    request_body(description = "A task template", content(
        (Object = "application/json"),
        (String = "application/yaml"),
        (String = "text/yaml"))),
    responses(
        (status = 201, description = "Registered", body = TemplateAccepted),
        (status = 200, description = "The identical definition was already registered", body = TemplateAccepted),
        (status = 400, description = "Malformed JSON or non-UTF-8 YAML", body = ErrorBody),
        (status = 409, description = "This version is registered with a different definition", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "The template is invalid; the message names the problem", body = ErrorBody),
    ),
    security(("bearer" = ["templates:write"])))]
pub async fn register_template(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, HttpError> {
    let template = parse_template(&headers, &body)?;
    let registered = tstore::register(&state.pool, &template).await?;
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(TemplateAccepted {
            key: template.key(),
            created: registered.created,
            levels: levels(&template),
        }),
    ))
}

/// Validates a template without registering it; returns each step's DAG level.
#[utoipa::path(post, path = "/v1/templates/validate", tag = "templates",
    request_body(description = "A task template", content(
        (Object = "application/json"),
        (String = "application/yaml"),
        (String = "text/yaml"))),
    responses(
        (status = 200, description = "Valid", body = TemplateAccepted),
        (status = 400, description = "Malformed JSON or non-UTF-8 YAML", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "The template is invalid; the message names the problem", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn validate_template(
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TemplateAccepted>, HttpError> {
    let template = parse_template(&headers, &body)?;
    Ok(Json(TemplateAccepted {
        key: template.key(),
        created: false,
        levels: levels(&template),
    }))
}

/// Every registered template version.
#[utoipa::path(get, path = "/v1/templates", tag = "templates",
    responses(
        (status = 200, description = "The templates", body = TemplateList),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_templates(
    State(state): State<ApiState>,
) -> Result<Json<TemplateList>, HttpError> {
    Ok(Json(TemplateList {
        templates: tstore::list(&state.pool).await?,
    }))
}

/// One registered template version's definition.
#[utoipa::path(get, path = "/v1/templates/{namespace}/{name}/{version}", tag = "templates",
    params(("namespace" = String, Path), ("name" = String, Path),
           ("version" = String, Path, description = "`MAJOR.MINOR.PATCH`, or `latest`")),
    responses(
        (status = 200, description = "The template definition", body = Object),
        (status = 400, description = "Invalid path parameter", body = ErrorBody),
        (status = 404, description = "Not registered", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn get_template(
    State(state): State<ApiState>,
    ApiPath((namespace, name, version)): ApiPath<(String, String, String)>,
) -> Result<Json<serde_json::Value>, HttpError> {
    let version = (version != "latest").then_some(version);
    let loaded = state
        .templates
        .get(&state.pool, &namespace, &name, version.as_deref())
        .await?;
    let value = serde_json::to_value(&loaded.template).map_err(|e| HttpError::internal(&e))?;
    Ok(Json(value))
}

/// Depth and age of every namespace queue and of the results queue.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses(
        (status = 200, description = "The queues", body = QueueList),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_queues(State(state): State<ApiState>) -> Result<Json<QueueList>, HttpError> {
    let mut names: Vec<(Option<String>, String)> = tstore::namespaces(&state.pool)
        .await?
        .into_iter()
        .map(|(ns, q)| (Some(ns), q))
        .collect();
    names.push((None, queue::RESULTS_QUEUE.to_string()));
    let mut conn = state.pool.acquire().await?;
    let mut queues = Vec::with_capacity(names.len());
    for (namespace, name) in names {
        let s = queue::stats(&mut conn, &name)
            .await
            .map_err(|e| HttpError::internal(&e))?;
        queues.push(QueueInfo {
            queue_name: s.queue_name,
            namespace,
            queue_length: s.queue_length,
            newest_msg_age_sec: s.newest_msg_age_sec,
            oldest_msg_age_sec: s.oldest_msg_age_sec,
            total_messages: s.total_messages,
        });
    }
    Ok(Json(QueueList { queues }))
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database answers and its schema is current.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Database unreachable or migrations pending", body = ErrorBody),
    ))]
pub async fn ready(State(state): State<ApiState>) -> Result<Json<Health>, HttpError> {
    let unavailable = |m: String| HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m);
    match tasker_store::migrate::is_current(&state.pool).await {
        Ok(true) => Ok(Json(Health {
            status: "ok".into(),
        })),
        Ok(false) => Err(unavailable("database migrations are pending".into())),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(unavailable("database unreachable".into()))
        }
    }
}
