//! Rate limit routes: define (or change), list, read and delete named
//! limits (`tasker_store::limit`; `docs/flow-control.md`). Steps reference a
//! limit by name in their template (`rate_limit: { name, key }`); workers
//! start them no faster than its rate, across processes. A limit covers
//! every namespace: a key limited to namespaces may not use these routes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};

use crate::error::{ErrorBody, HttpError};
use crate::extract::{ApiPath, ExactJson};
use crate::keys::Principal;
use crate::types::*;
use crate::ApiState;
use tasker_store::limit;

fn no_such_limit(name: &str) -> HttpError {
    HttpError::not_found(format!(
        "rate limit `{name}` is not defined (`tasker limit list` shows the defined ones)"
    ))
}

/// Defines the limit `name`, or changes its rate and burst. Steps that
/// reference it start at most `per_second` a second (on average) and
/// `burst` at once, per key, across every worker. Idempotent.
#[utoipa::path(put, path = "/v1/limits/{name}", tag = "limits",
    params(("name" = String, Path, description = "The limit's name: `^[a-z][a-z0-9_]*$`, at most 63 characters")),
    request_body = SetLimitRequest,
    responses(
        (status = 200, description = "The limit as defined now", body = Limit),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid name, per_second (1/3600 to 1,000,000) or burst (1 to 1,000,000), named in `details.field`", body = ErrorBody),
    ),
    security(("bearer" = ["admin"])))]
pub async fn set_limit(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    ExactJson(req): ExactJson<SetLimitRequest>,
) -> Result<Json<Limit>, HttpError> {
    let (row, created) = limit::set(&state.pool, &name, req.per_second, req.burst).await?;
    tracing::info!(limit = %row.name, per_second = row.per_second, burst = row.burst,
        created, by = %who.name, "rate limit set");
    Ok(Json(row.into()))
}

/// Every rate limit, by name.
#[utoipa::path(get, path = "/v1/limits", tag = "limits",
    responses((status = 200, description = "The defined limits", body = LimitList)),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_limits(State(state): State<ApiState>) -> Result<Json<LimitList>, HttpError> {
    let limits = limit::list(&state.pool).await?;
    Ok(Json(LimitList {
        limits: limits.into_iter().map(Limit::from).collect(),
    }))
}

/// One rate limit.
#[utoipa::path(get, path = "/v1/limits/{name}", tag = "limits",
    params(("name" = String, Path, description = "The limit's name")),
    responses(
        (status = 200, description = "The limit", body = Limit),
        (status = 404, description = "No such limit", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn get_limit(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Limit>, HttpError> {
    match limit::get(&state.pool, &name).await? {
        Some(row) => Ok(Json(row.into())),
        None => Err(no_such_limit(&name)),
    }
}

/// Deletes a rate limit: the steps that reference it run unlimited from the
/// next claim (their templates keep the reference; defining the limit again
/// limits them again).
#[utoipa::path(delete, path = "/v1/limits/{name}", tag = "limits",
    params(("name" = String, Path, description = "The limit's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such limit", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    ),
    security(("bearer" = ["admin"])))]
pub async fn delete_limit(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, HttpError> {
    if !limit::delete(&state.pool, &name).await? {
        return Err(no_such_limit(&name));
    }
    tracing::info!(limit = %name, by = %who.name, "rate limit deleted");
    Ok(StatusCode::NO_CONTENT)
}
