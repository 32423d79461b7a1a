//! Worker routes: the worker registry, and the check that a template's steps
//! have live workers (used when registering templates and creating tasks).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::HttpError;
use crate::extract::ApiQuery;
use crate::types::*;
use crate::ApiState;
use tasker_model::template::Template;
use tasker_store::worker;

/// Query of `GET /v1/workers`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListWorkersParams {
    /// Also list stopped and gone workers (kept for a day).
    #[serde(default)]
    pub all: bool,
}

/// The worker registry: every live worker host (with `all`, also those that
/// stopped or went missing) — runtime, pools, handlers, load.
#[utoipa::path(get, path = "/v1/workers", tag = "workers",
    params(ListWorkersParams),
    responses(
        (status = 200, description = "The workers, live first", body = WorkerList),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_workers(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<ListWorkersParams>,
) -> Result<Json<WorkerList>, HttpError> {
    let workers = worker::list(&state.pool, params.all).await?;
    Ok(Json(WorkerList { workers }))
}

/// The steps of `template` that no live worker serves; with
/// `web.require_live_workers`, any such step refuses the request (422,
/// naming them).
pub(crate) async fn unserved_steps(
    state: &ApiState,
    template: &Template,
) -> Result<Vec<UnservedStep>, HttpError> {
    let unserved = worker::unserved(&state.pool, template).await?;
    if state.require_live_workers && !unserved.is_empty() {
        let names: Vec<String> = unserved
            .iter()
            .map(|u| format!("{} (handler '{}', pool '{}')", u.step, u.handler, u.pool))
            .collect();
        return Err(HttpError::unprocessable(format!(
            "no live worker serves step {} of {} (web.require_live_workers is on)",
            names.join(", "),
            template.key()
        ))
        .with_details(serde_json::json!({ "unserved": unserved })));
    }
    Ok(unserved)
}
