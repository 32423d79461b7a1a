//! Health routes: liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::error::{ErrorBody, HttpError};
use crate::types::*;
use crate::ApiState;

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
