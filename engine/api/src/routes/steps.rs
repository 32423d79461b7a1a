//! Step routes: a task's steps, one step, its transitions and its handler
//! logs, and the operator actions retry, resolve and complete.

use axum::body::Bytes;
use axum::extract::State;
use axum::{Extension, Json};
use uuid::Uuid;

use super::body::{optional_body, reject_nul};
use super::processor_id;
use crate::error::{ErrorBody, HttpError};
use crate::extract::{ApiJson, ApiPath};
use crate::keys::Principal;
use crate::types::*;
use crate::ApiState;
use tasker_store::operator::{self, Actor};
use tasker_store::step as sstore;
use tasker_store::task;

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
    let budget = state.list_payload_limit_bytes;
    Ok(Json(
        task::detail_within(&state.pool, id, budget).await?.steps,
    ))
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

/// What a step's handler logged, attempt by attempt (oldest first; attempts
/// that logged nothing are left out).
#[utoipa::path(get, path = "/v1/tasks/{id}/steps/{step}/logs", tag = "steps",
    params(("id" = Uuid, Path, description = "Task id"),
           ("step" = String, Path, description = "Step id or step name")),
    responses(
        (status = 200, description = "The step's handler logs", body = StepLogs),
        (status = 400, description = "Invalid task id", body = ErrorBody),
        (status = 404, description = "No such task or step", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn step_logs(
    State(state): State<ApiState>,
    ApiPath((id, step)): ApiPath<(Uuid, String)>,
) -> Result<Json<StepLogs>, HttpError> {
    let step = resolve_step(&state, id, &step).await?;
    let stored = tasker_store::step_log::for_step(&state.pool, id, &step.id.to_string()).await?;
    let attempts = stored
        .into_iter()
        .map(|a| AttemptLogBody {
            attempt: a.attempt,
            worker_id: a.worker_id,
            created_at: a.created_at,
            lines: a
                .lines
                .into_iter()
                .map(|l| LogLineBody {
                    at: l.at,
                    level: l.level.as_str().to_string(),
                    message: l.message,
                })
                .collect(),
            dropped: a.dropped,
        })
        .collect();
    Ok(Json(StepLogs {
        task_id: id,
        step: step.name,
        attempts,
    }))
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
    let (next, changed) = operator::retry_step(&state.pool, id, step.id, actor).await?;
    state.wakeups.announce(&changed);
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
    let (next, changed) = operator::finish_step(&state.pool, id, step.id, result, actor).await?;
    state.wakeups.announce(&changed);
    Ok(Json(ActionResult {
        task_id: id,
        step_id: Some(step.id),
        task_state: next.to_string(),
    }))
}
