//! Dead-letter queue routes: the steps that ended in error, one of them, and
//! discarding one. Retrying, resolving and completing a dead step are the
//! step routes (`/v1/tasks/{id}/steps/{step}/retry|resolve|complete`).

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::Json;
use uuid::Uuid;

use super::body::optional_body;
use super::processor_id;
use super::tasks::page_limit;
use crate::error::HttpError;
use crate::extract::{ApiPath, ApiQuery};
use crate::keys::Principal;
use crate::types::*;
use crate::ApiState;
use tasker_store::dlq;
use tasker_store::operator::Actor;

/// The dead-letter queue of steps: every step that ended in error (attempts
/// exhausted, a permanent failure, no live worker), oldest step first.
#[utoipa::path(get, path = "/v1/dlq", tag = "dlq",
    params(ListDlqParams),
    responses(
        (status = 200, description = "A page of dead steps", body = DlqPage),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
        (status = 422, description = "Invalid limit", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_dlq(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiQuery(params): ApiQuery<ListDlqParams>,
) -> Result<Json<DlqPage>, HttpError> {
    let limit = page_limit(params.limit)?;
    let namespaces = crate::scope::list_filter(&who, params.namespace.as_deref())?;
    let mut steps = dlq::list(&state.pool, namespaces.as_deref(), params.cursor, limit + 1).await?;
    let more = steps.len() as i64 > limit;
    steps.truncate(limit as usize);
    let next_cursor = more.then(|| steps.last().map(|s| s.step_id)).flatten();
    Ok(Json(DlqPage { steps, next_cursor }))
}

async fn dead_step(state: &ApiState, step_id: Uuid) -> Result<DeadStep, HttpError> {
    dlq::get(&state.pool, step_id).await?.ok_or_else(|| {
        HttpError::not_found(format!("step {step_id} is not in the dead-letter queue"))
    })
}

/// One dead step: its task, template, handler, attempts, last error and input.
#[utoipa::path(get, path = "/v1/dlq/{step_id}", tag = "dlq",
    params(("step_id" = Uuid, Path, description = "Step id")),
    responses(
        (status = 200, description = "The dead step", body = DeadStep),
        (status = 400, description = "Invalid step id", body = ErrorBody),
        (status = 404, description = "Not in the dead-letter queue", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn get_dead_step(
    State(state): State<ApiState>,
    ApiPath(step_id): ApiPath<Uuid>,
) -> Result<Json<DeadStep>, HttpError> {
    Ok(Json(dead_step(&state, step_id).await?))
}

/// Gives a dead step up: it leaves the queue and its task, if still waiting,
/// ends in error (its unfinished steps cancelled).
#[utoipa::path(post, path = "/v1/dlq/{step_id}/discard", tag = "dlq",
    params(("step_id" = Uuid, Path, description = "Step id")),
    request_body(content = Option<ActionRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "Discarded", body = ActionResult),
        (status = 400, description = "Invalid step id or malformed JSON", body = ErrorBody),
        (status = 404, description = "Not in the dead-letter queue", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    ),
    security(("bearer" = ["steps:resolve"])))]
pub async fn discard_dead_step(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(step_id): ApiPath<Uuid>,
    body: Bytes,
) -> Result<Json<ActionResult>, HttpError> {
    let req: ActionRequest = optional_body(&body)?;
    let dead = dead_step(&state, step_id).await?;
    let pid = processor_id(&who);
    let actor = Actor {
        processor_id: &pid,
        reason: req.reason.as_deref(),
    };
    let (next, changed) = dlq::discard(&state.pool, step_id, actor).await?;
    state.wakeups.announce(&changed);
    Ok(Json(ActionResult {
        task_id: dead.task_id,
        step_id: Some(step_id),
        task_state: next.to_string(),
    }))
}
