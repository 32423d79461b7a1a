//! Retention: `POST /v1/retention/run` removes finished tasks past their
//! namespace's age now, or counts them (`tasker_store::retention`,
//! `docs/retention.md`).

use std::ops::ControlFlow;
use std::time::Instant;

use axum::extract::State;
use axum::{Extension, Json};

use crate::error::{ErrorBody, HttpError};
use crate::extract::ExactJson;
use crate::keys::Principal;
use crate::types::*;
use crate::ApiState;
use tasker_config::MAX_BATCH_SIZE;
use tasker_store::retention;

/// Removes finished tasks (complete, error, cancelled, resolved by hand)
/// older than their namespace's age (`[retention]`) with all their rows,
/// a batch per transaction, oldest first; or, with `dry_run`, counts them per
/// namespace. A run stops after half the request time limit: `done` false
/// means tasks are left, send it again. Works whether or not the background
/// sweep (`retention.enabled`) is on.
#[utoipa::path(post, path = "/v1/retention/run", tag = "retention",
    request_body = RetentionRunRequest,
    responses(
        (status = 200, description = "What was removed, or would be", body = RetentionRun),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid body: `dry_run` or `batch_size`, named in `details.field`", body = ErrorBody),
    ),
    security(("bearer" = ["admin"])))]
pub async fn run_retention(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ExactJson(req): ExactJson<RetentionRunRequest>,
) -> Result<Json<RetentionRun>, HttpError> {
    let batch = req.batch_size.unwrap_or(state.retention_batch_size);
    if !(1..=MAX_BATCH_SIZE).contains(&batch) {
        return Err(HttpError::unprocessable(format!(
            "batch_size must be 1..={MAX_BATCH_SIZE}, got {batch}"
        ))
        .with_details(serde_json::json!({ "field": "batch_size" })));
    }
    if req.dry_run {
        let namespaces = retention::plan(&state.pool, &state.retention, chrono::Utc::now()).await?;
        return Ok(Json(RetentionRun {
            dry_run: true,
            namespaces,
            deleted: 0,
            batches: 0,
            done: true,
        }));
    }
    let deadline = Instant::now() + state.request_timeout / 2;
    let swept = retention::run(&state.pool, &state.retention, batch, |_| {
        if Instant::now() >= deadline {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .await?;
    tracing::info!(tasks = swept.tasks, batches = swept.batches, done = swept.done,
        by = %who.name, "retention run");
    Ok(Json(RetentionRun {
        dry_run: false,
        namespaces: Vec::new(),
        deleted: swept.tasks,
        batches: swept.batches,
        done: swept.done,
    }))
}
