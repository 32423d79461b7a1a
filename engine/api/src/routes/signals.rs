//! The signal route: a named payload for the step of a task that waits for it
//! (`wait_for`), `docs/waits.md`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use uuid::Uuid;

use super::body::reject_nul;
use super::processor_id;
use crate::error::{ErrorBody, HttpError};
use crate::extract::{ApiPath, ExactJson};
use crate::keys::Principal;
use crate::types::{SendSignalRequest, SignalResult};
use crate::ApiState;
use tasker_store::signal::{self, Refused};

/// Sends a signal to a task. The step waiting for it completes at once, its
/// result the payload (200); a signal sent before its step waits is buffered
/// and taken when the step begins to wait (202). At most one signal of a
/// name is buffered per task.
#[utoipa::path(post, path = "/v1/tasks/{id}/signals/{name}", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id"),
           ("name" = String, Path, description = "Signal name, as a step's `wait_for.signal` names it")),
    request_body = SendSignalRequest,
    responses(
        (status = 200, description = "The waiting step took the signal and completed", body = SignalResult),
        (status = 202, description = "Buffered until the step waits for it", body = SignalResult),
        (status = 400, description = "Invalid task id or malformed JSON", body = ErrorBody),
        (status = 404, description = "No such task, or no step of it waits for this signal", body = ErrorBody),
        (status = 409, description = "The task has finished, the step that waits for the signal is done, or a signal of this name is already buffered", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid body or signal name", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:create"])))]
pub async fn send_signal(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath((id, name)): ApiPath<(Uuid, String)>,
    ExactJson(req): ExactJson<SendSignalRequest>,
) -> Result<impl IntoResponse, HttpError> {
    reject_nul(&req)?;
    let (sent, changed) =
        signal::send(&state.pool, id, &name, &req.payload, &processor_id(&who)).await?;
    state.wakeups.announce(&changed);
    let sent = sent.map_err(|refused| {
        let msg = refused.to_string();
        match refused {
            Refused::NotAwaited { .. } => {
                HttpError::not_found(msg).with_details(serde_json::json!({ "field": "name" }))
            }
            Refused::StepDone { .. } | Refused::AlreadyBuffered { .. } => {
                HttpError::new(StatusCode::CONFLICT, "invalid_state", msg)
            }
        }
    })?;
    let status = if sent.consumed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let body = SignalResult {
        signal_id: sent.signal_id,
        task_id: id,
        name,
        step: sent.step,
        step_id: sent.step_id,
        consumed: sent.consumed,
        step_state: sent.step_state.to_string(),
        task_state: sent.task_state.to_string(),
    };
    Ok((status, Json(body)))
}
