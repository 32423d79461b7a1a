//! Worker routes: the worker registry, and the check that a template's steps
//! have live workers (used when registering templates and creating tasks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::HttpError;
use crate::extract::ApiQuery;
use crate::types::*;
use crate::ApiState;
use tasker_model::template::Template;
use tasker_store::template::Loaded;
use tasker_store::worker::{self, UnservedStep};

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
    refuse_unserved(state, template, unserved)
}

/// [`unserved_steps`] of a registered template, as answered at most
/// [`UNSERVED_FOR`] ago: task creation asks for every task, and the registry
/// it reads changes at the pace of worker heartbeats (seconds), so a creation
/// needs no query of its own for it.
pub(crate) async fn unserved_steps_of(
    state: &ApiState,
    loaded: &Loaded,
) -> Result<Vec<UnservedStep>, HttpError> {
    let unserved = match state.unserved.get(loaded.id) {
        Some(unserved) => unserved,
        None => {
            let unserved = worker::unserved(&state.pool, &loaded.template).await?;
            state.unserved.put(loaded.id, unserved.clone());
            unserved
        }
    };
    refuse_unserved(state, &loaded.template, unserved)
}

fn refuse_unserved(
    state: &ApiState,
    template: &Template,
    unserved: Vec<UnservedStep>,
) -> Result<Vec<UnservedStep>, HttpError> {
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

/// How long an answer of [`unserved_steps_of`] is reused.
pub const UNSERVED_FOR: Duration = Duration::from_secs(1);

/// Templates whose answer is kept at most; beyond that the oldest half goes.
const UNSERVED_TEMPLATES: usize = 1024;

/// The answers of [`unserved_steps_of`] by template id, each for
/// [`UNSERVED_FOR`]. Cheap to clone; clones share.
#[derive(Clone, Default)]
pub struct UnservedCache(Arc<Mutex<HashMap<i64, Answer>>>);

/// When [`unserved_steps_of`] asked, and what the registry answered.
type Answer = (Instant, Vec<UnservedStep>);

impl UnservedCache {
    fn get(&self, template_id: i64) -> Option<Vec<UnservedStep>> {
        let kept = self.0.lock().ok()?;
        let (at, unserved) = kept.get(&template_id)?;
        (at.elapsed() < UNSERVED_FOR).then(|| unserved.clone())
    }

    fn put(&self, template_id: i64, unserved: Vec<UnservedStep>) {
        if let Ok(mut kept) = self.0.lock() {
            if kept.len() >= UNSERVED_TEMPLATES {
                kept.retain(|_, (at, _)| at.elapsed() < UNSERVED_FOR);
            }
            if kept.len() < UNSERVED_TEMPLATES {
                kept.insert(template_id, (Instant::now(), unserved));
            }
        }
    }
}
