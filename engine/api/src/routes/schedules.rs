//! Schedule routes: create, list, get, pause, resume, delete
//! (`tasker_store::schedule`; `docs/schedules.md`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use uuid::Uuid;

use super::body::reject_nul;
use super::tasks::page_limit;
use crate::error::{ErrorBody, HttpError};
use crate::extract::{ApiPath, ApiQuery, ExactJson};
use crate::keys::Principal;
use crate::types::*;
use crate::ApiState;
use tasker_store::schedule;

/// Creates a schedule: `template` fired on `cron` in `timezone`, each tick
/// exactly once across every orchestrator.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules",
    request_body = CreateScheduleRequest,
    responses(
        (status = 201, description = "Schedule created", body = Schedule),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "A schedule of this name exists in the namespace", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid body: name, cron, timezone, template (not registered) or context (refused by the template's schema), named in `details.field`", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:create"])))]
pub async fn create_schedule(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ExactJson(req): ExactJson<CreateScheduleRequest>,
) -> Result<impl IntoResponse, HttpError> {
    reject_nul(&req)?;
    crate::scope::check(&who, &req.namespace)?;
    let row = schedule::create(&state.pool, &state.templates, &req.into()).await?;
    tracing::info!(schedule_id = %row.id, namespace = %row.namespace, name = %row.name,
        by = %who.name, "schedule created");
    Ok((StatusCode::CREATED, Json(row)))
}

/// Lists schedules, oldest first, with cursor pagination.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    params(ListSchedulesParams),
    responses(
        (status = 200, description = "A page of schedules", body = SchedulePage),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
        (status = 422, description = "Invalid limit", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_schedules(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiQuery(params): ApiQuery<ListSchedulesParams>,
) -> Result<Json<SchedulePage>, HttpError> {
    let limit = page_limit(params.limit)?;
    let namespaces = crate::scope::list_filter(&who, params.namespace.as_deref())?;
    let mut schedules =
        schedule::list(&state.pool, namespaces.as_deref(), params.cursor, limit + 1).await?;
    let more = schedules.len() as i64 > limit;
    schedules.truncate(limit as usize);
    let next_cursor = more.then(|| schedules.last().map(|s| s.id)).flatten();
    Ok(Json(SchedulePage {
        schedules,
        next_cursor,
    }))
}

/// One schedule.
#[utoipa::path(get, path = "/v1/schedules/{schedule_id}", tag = "schedules",
    params(("schedule_id" = Uuid, Path, description = "Schedule id")),
    responses(
        (status = 200, description = "The schedule", body = Schedule),
        (status = 400, description = "Invalid schedule id", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn get_schedule(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Schedule>, HttpError> {
    Ok(Json(schedule::get(&state.pool, id).await?))
}

/// Pauses a schedule: no tick fires until it is resumed. Idempotent.
#[utoipa::path(post, path = "/v1/schedules/{schedule_id}/pause", tag = "schedules",
    params(("schedule_id" = Uuid, Path, description = "Schedule id")),
    responses(
        (status = 200, description = "Paused", body = Schedule),
        (status = 400, description = "Invalid schedule id", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:create"])))]
pub async fn pause_schedule(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Schedule>, HttpError> {
    let row = schedule::pause(&state.pool, id).await?;
    tracing::info!(schedule_id = %id, by = %who.name, "schedule paused");
    Ok(Json(row))
}

/// Resumes a paused schedule from its next tick after now (the ticks of the
/// pause do not fire). Idempotent.
#[utoipa::path(post, path = "/v1/schedules/{schedule_id}/resume", tag = "schedules",
    params(("schedule_id" = Uuid, Path, description = "Schedule id")),
    responses(
        (status = 200, description = "Running", body = Schedule),
        (status = 400, description = "Invalid schedule id", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:create"])))]
pub async fn resume_schedule(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Schedule>, HttpError> {
    let row = schedule::resume(&state.pool, id).await?;
    tracing::info!(schedule_id = %id, by = %who.name, "schedule resumed");
    Ok(Json(row))
}

/// Deletes a schedule and its fire records; the tasks it fired stay.
#[utoipa::path(delete, path = "/v1/schedules/{schedule_id}", tag = "schedules",
    params(("schedule_id" = Uuid, Path, description = "Schedule id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid schedule id", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:create"])))]
pub async fn delete_schedule(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, HttpError> {
    schedule::delete(&state.pool, id).await?;
    tracing::info!(schedule_id = %id, by = %who.name, "schedule deleted");
    Ok(StatusCode::NO_CONTENT)
}
