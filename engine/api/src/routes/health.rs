//! Health routes: liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;

use tasker_store::db::{DbState, Unavailable};

use crate::error::{ErrorBody, HttpError};
use crate::types::*;
use crate::ApiState;

/// Liveness: the process serves requests (also while it waits for the
/// database).
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        breakers: Default::default(),
    })
}

/// Readiness: the database answers and its schema is current. When not
/// ready, the 503 says why: `details.reason` is `database_unreachable`
/// (with `since_seconds` and the last `error`), `database_checking` (a
/// statement just lost the database; a fresh connection is being tried),
/// `migrations_pending` or `database_error` (the check failed otherwise).
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready: database unreachable or migrations pending (`details.reason` says which)", body = ErrorBody),
    ))]
pub async fn ready(State(state): State<ApiState>) -> Result<Json<Health>, HttpError> {
    let db = state.wakeups.database();
    match db.state() {
        DbState::Down { since, error } => {
            let secs = since.elapsed().as_secs();
            return Err(HttpError::database_unavailable(format!(
                "database unreachable for {secs} s ({error}); waiting for it"
            ))
            .with_details(json!({
                "reason": "database_unreachable",
                "since_seconds": secs,
                "error": error,
            })));
        }
        DbState::Checking => {
            return Err(HttpError::database_unavailable(
                "a statement lost the database; checking whether it answers",
            )
            .with_details(json!({ "reason": "database_checking" })));
        }
        DbState::Up => {}
    }
    let breakers: std::collections::BTreeMap<String, String> = tasker_model::breaker::snapshot()
        .into_iter()
        .map(|(name, b)| (name, b.state.as_str().to_string()))
        .collect();
    if breakers.get("database").is_some_and(|s| s == "open") {
        return Err(HttpError::database_unavailable(
            "the database circuit breaker is open: recent calls kept failing",
        )
        .with_details(json!({ "reason": "circuit_open", "breakers": breakers })));
    }
    match tasker_store::migrate::is_current(&state.pool).await {
        Ok(true) => Ok(Json(Health {
            status: "ok".into(),
            breakers,
        })),
        Ok(false) => Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "database migrations are pending",
        )
        .with_details(json!({ "reason": "migrations_pending" }))),
        Err(e) => {
            let unreachable = e.is_unavailable();
            // An outage is logged once, by the process's Availability.
            if !db.report(&e) {
                tracing::warn!(error = %e, "readiness check failed");
            }
            if unreachable {
                Err(
                    HttpError::database_unavailable(format!("database unreachable: {e}"))
                        .with_details(json!({
                            "reason": "database_unreachable",
                            "error": e.to_string(),
                        })),
                )
            } else {
                Err(HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("the readiness check failed: {e}"),
                )
                .with_details(json!({ "reason": "database_error", "error": e.to_string() })))
            }
        }
    }
}
