//! Pause and resume a task, a template (every version) or a namespace, and
//! list the pauses in force (`tasker_store::pause`; `docs/flow-control.md`).
//! Paused work is not claimed; steps already running finish; resuming
//! continues where the work stopped.

use axum::extract::State;
use axum::{Extension, Json};
use uuid::Uuid;

use crate::error::{ErrorBody, HttpError};
use crate::extract::{ApiPath, ApiQuery};
use crate::keys::Principal;
use crate::types::*;
use crate::ApiState;
use tasker_store::pause::{self, PauseScope};

async fn pause_target(
    state: &ApiState,
    who: &Principal,
    scope: PauseScope,
    target: &str,
    reason: Option<String>,
) -> Result<Json<PauseChange>, HttpError> {
    super::body::reject_nul(&reason)?;
    let change = pause::pause(&state.pool, scope, target, reason.as_deref(), &who.name).await?;
    tracing::info!(scope = scope.as_str(), %target, by = %who.name, "paused");
    Ok(Json(change))
}

async fn resume_target(
    state: &ApiState,
    who: &Principal,
    scope: PauseScope,
    target: &str,
) -> Result<Json<PauseChange>, HttpError> {
    let (change, changed) = pause::resume(&state.pool, scope, target).await?;
    state.wakeups.announce(&changed);
    tracing::info!(scope = scope.as_str(), %target, by = %who.name, "resumed");
    Ok(Json(change))
}

/// Pauses a task: none of its steps is claimed until it is resumed; steps
/// already running finish. Idempotent.
#[utoipa::path(post, path = "/v1/tasks/{id}/pause", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id"), PauseParams),
    responses(
        (status = 200, description = "Paused (`changed` false: it was already)", body = PauseChange),
        (status = 400, description = "Invalid task id or query", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 422, description = "Reason too long", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:cancel"])))]
pub async fn pause_task(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(p): ApiQuery<PauseParams>,
) -> Result<Json<PauseChange>, HttpError> {
    pause_target(&state, &who, PauseScope::Task, &id.to_string(), p.reason).await
}

/// Resumes a paused task where it stopped. Idempotent.
#[utoipa::path(post, path = "/v1/tasks/{id}/resume", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "Resumed (`changed` false: it was not paused)", body = PauseChange),
        (status = 400, description = "Invalid task id", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:cancel"])))]
pub async fn resume_task(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PauseChange>, HttpError> {
    resume_target(&state, &who, PauseScope::Task, &id.to_string()).await
}

/// Pauses every task of a template, every version, present and future.
#[utoipa::path(post, path = "/v1/templates/{namespace}/{name}/pause", tag = "templates",
    params(("namespace" = String, Path), ("name" = String, Path), PauseParams),
    responses(
        (status = 200, description = "Paused (`changed` false: it was already)", body = PauseChange),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 404, description = "No such template", body = ErrorBody),
        (status = 422, description = "Invalid namespace, name or reason", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:cancel"])))]
pub async fn pause_template(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath((namespace, name)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<PauseParams>,
) -> Result<Json<PauseChange>, HttpError> {
    let target = format!("{namespace}/{name}");
    pause_target(&state, &who, PauseScope::Template, &target, p.reason).await
}

/// Resumes a paused template's tasks.
#[utoipa::path(post, path = "/v1/templates/{namespace}/{name}/resume", tag = "templates",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses(
        (status = 200, description = "Resumed (`changed` false: it was not paused)", body = PauseChange),
        (status = 404, description = "No such template", body = ErrorBody),
        (status = 422, description = "Invalid namespace or name", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:cancel"])))]
pub async fn resume_template(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath((namespace, name)): ApiPath<(String, String)>,
) -> Result<Json<PauseChange>, HttpError> {
    let target = format!("{namespace}/{name}");
    resume_target(&state, &who, PauseScope::Template, &target).await
}

/// Pauses every task of a namespace, present and future.
#[utoipa::path(post, path = "/v1/namespaces/{namespace}/pause", tag = "templates",
    params(("namespace" = String, Path), PauseParams),
    responses(
        (status = 200, description = "Paused (`changed` false: it was already)", body = PauseChange),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 404, description = "No template is registered in the namespace", body = ErrorBody),
        (status = 422, description = "Invalid namespace or reason", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:cancel"])))]
pub async fn pause_namespace(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(namespace): ApiPath<String>,
    ApiQuery(p): ApiQuery<PauseParams>,
) -> Result<Json<PauseChange>, HttpError> {
    pause_target(&state, &who, PauseScope::Namespace, &namespace, p.reason).await
}

/// Resumes a paused namespace's tasks.
#[utoipa::path(post, path = "/v1/namespaces/{namespace}/resume", tag = "templates",
    params(("namespace" = String, Path)),
    responses(
        (status = 200, description = "Resumed (`changed` false: it was not paused)", body = PauseChange),
        (status = 404, description = "No template is registered in the namespace", body = ErrorBody),
        (status = 422, description = "Invalid namespace", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:cancel"])))]
pub async fn resume_namespace(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(namespace): ApiPath<String>,
) -> Result<Json<PauseChange>, HttpError> {
    resume_target(&state, &who, PauseScope::Namespace, &namespace).await
}

/// The pauses in force, oldest first.
#[utoipa::path(get, path = "/v1/pauses", tag = "tasks",
    params(ListPausesParams),
    responses(
        (status = 200, description = "The pauses in force", body = PauseList),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_pauses(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiQuery(params): ApiQuery<ListPausesParams>,
) -> Result<Json<PauseList>, HttpError> {
    let namespaces = crate::scope::list_filter(&who, params.namespace.as_deref())?;
    let pauses = pause::list(&state.pool, namespaces.as_deref()).await?;
    Ok(Json(PauseList { pauses }))
}
