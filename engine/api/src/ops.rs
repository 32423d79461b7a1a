//! Analytics and the dead-letter queue (PGMQ archives).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ErrorBody, HttpError};
use super::extract::{ApiPath, ApiQuery};
use super::ApiState;
use tasker_store::{analytics, archive};

/// Checks an instant given as a query parameter: RFC 3339 years, 0000 to
/// 9999. (chrono parses years to ±262143, PostgreSQL's `timestamptz` holds
/// 4713 BC to 294276 AD: an instant outside one of them was a 500.) The error
/// is a 422 naming `field`.
pub(crate) fn check_instant(field: &str, value: &DateTime<Utc>) -> Result<(), HttpError> {
    if (0..=9999).contains(&value.year()) {
        return Ok(());
    }
    Err(HttpError::unprocessable(format!(
        "{field}: {} is out of range: must be between 0000-01-01T00:00:00Z and \
         9999-12-31T23:59:59Z",
        value.to_rfc3339()
    ))
    .with_details(serde_json::json!({ "field": field })))
}

/// Slowest step attempts listed by `GET /v1/analytics`.
const SLOWEST: i64 = 10;
/// Window when `since` is absent.
const DEFAULT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// `GET /v1/analytics` query parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsParams {
    /// Start of the window (RFC 3339); default one hour ago. The window ends now.
    pub since: Option<DateTime<Utc>>,
}

/// One long step attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SlowStepBody {
    pub task_id: Uuid,
    pub step: String,
    pub handler: String,
    pub attempt: i32,
    pub duration_seconds: f64,
}

/// Throughput and latency over a window.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Analytics {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Tasks created in the window, by current state.
    pub tasks_by_state: BTreeMap<String, i64>,
    /// Successful step attempts recorded in the window.
    pub steps_completed: i64,
    /// `steps_completed` divided by the window's length.
    pub steps_per_second: f64,
    /// Median creation-to-completion time of the window's complete tasks.
    pub task_latency_p50_seconds: Option<f64>,
    /// 95th percentile of the same.
    pub task_latency_p95_seconds: Option<f64>,
    /// The 10 longest step attempts recorded in the window, longest first.
    pub slowest_steps: Vec<SlowStepBody>,
}

/// Counts by state, throughput, task latency and the slowest steps since a moment.
#[utoipa::path(get, path = "/v1/analytics", tag = "analytics",
    params(AnalyticsParams),
    responses(
        (status = 200, description = "The window's numbers", body = Analytics),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
        (status = 422, description = "`since` is in the future or out of range", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn analytics(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<AnalyticsParams>,
) -> Result<Json<Analytics>, HttpError> {
    let until = Utc::now();
    if let Some(since) = &params.since {
        check_instant("since", since)?;
    }
    let since = params.since.unwrap_or(until - DEFAULT_WINDOW);
    if since > until {
        return Err(HttpError::unprocessable("since is in the future")
            .with_details(serde_json::json!({"field": "since"})));
    }
    let s = analytics::summary(&state.pool, since, SLOWEST).await?;
    let secs = (until - since).as_seconds_f64().max(1e-3);
    Ok(Json(Analytics {
        since,
        until,
        tasks_by_state: s.tasks_by_state.into_iter().collect(),
        steps_completed: s.steps_completed,
        steps_per_second: s.steps_completed as f64 / secs,
        task_latency_p50_seconds: s.latency_p50_seconds,
        task_latency_p95_seconds: s.latency_p95_seconds,
        slowest_steps: s
            .slowest_steps
            .into_iter()
            .map(|r| SlowStepBody {
                task_id: r.task_id,
                step: r.step_name,
                handler: r.handler_name,
                attempt: r.attempt,
                duration_seconds: r.duration_seconds,
            })
            .collect(),
    }))
}

/// Largest page of archived messages.
pub const MAX_ARCHIVE_PAGE: i64 = 500;

/// `GET /v1/queues/{queue}/archive` query parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ArchiveParams {
    /// Page size, 1..=500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// One dead letter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArchivedMessageBody {
    pub msg_id: i64,
    /// Times the message was read before it was archived.
    pub read_ct: i32,
    pub enqueued_at: DateTime<Utc>,
    pub archived_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub message: serde_json::Value,
}

/// A page of dead letters, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArchivePage {
    pub queue: String,
    pub messages: Vec<ArchivedMessageBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// A requeued dead letter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Requeued {
    pub queue: String,
    /// The id it had in the archive.
    pub archived_msg_id: i64,
    /// Its id in the queue now.
    pub msg_id: i64,
}

async fn known_queue(state: &ApiState, queue: &str) -> Result<(), HttpError> {
    if archive::queue_exists(&state.pool, queue).await? {
        Ok(())
    } else {
        Err(HttpError::not_found(format!(
            "queue '{queue}' does not exist"
        )))
    }
}

/// Dead letters of a queue (its PGMQ archive), oldest first, paginated.
#[utoipa::path(get, path = "/v1/queues/{queue}/archive", tag = "queues",
    params(("queue" = String, Path, description = "`steps_<pool>` or `orchestration_results`"), ArchiveParams),
    responses(
        (status = 200, description = "A page of archived messages", body = ArchivePage),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 422, description = "Not a tasker queue name, or limit out of range", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_archive(
    State(state): State<ApiState>,
    ApiPath(queue): ApiPath<String>,
    ApiQuery(params): ApiQuery<ArchiveParams>,
) -> Result<Json<ArchivePage>, HttpError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_ARCHIVE_PAGE).contains(&limit) {
        return Err(HttpError::unprocessable(format!(
            "limit must be 1..={MAX_ARCHIVE_PAGE}, got {limit}"
        ))
        .with_details(serde_json::json!({"field": "limit"})));
    }
    known_queue(&state, &queue).await?;
    let mut rows = archive::list(&state.pool, &queue, params.cursor, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|m| m.msg_id)
    } else {
        None
    };
    Ok(Json(ArchivePage {
        queue,
        messages: rows
            .into_iter()
            .map(|m| ArchivedMessageBody {
                msg_id: m.msg_id,
                read_ct: m.read_ct,
                enqueued_at: m.enqueued_at,
                archived_at: m.archived_at,
                message: m.message,
            })
            .collect(),
        next_cursor,
    }))
}

/// Sends a dead letter back to its queue and removes it from the archive (one transaction).
#[utoipa::path(post, path = "/v1/queues/{queue}/archive/{msg_id}/requeue", tag = "queues",
    params(("queue" = String, Path, description = "`steps_<pool>` or `orchestration_results`"),
           ("msg_id" = i64, Path, description = "The archived message's id")),
    responses(
        (status = 200, description = "Requeued", body = Requeued),
        (status = 400, description = "Invalid message id", body = ErrorBody),
        (status = 404, description = "No such queue or archived message", body = ErrorBody),
        (status = 422, description = "Not a tasker queue name", body = ErrorBody),
    ),
    security(("bearer" = ["admin"])))]
pub async fn requeue(
    State(state): State<ApiState>,
    ApiPath((queue, msg_id)): ApiPath<(String, i64)>,
) -> Result<Json<Requeued>, HttpError> {
    known_queue(&state, &queue).await?;
    let (new_id, changed) = archive::requeue(&state.pool, &queue, msg_id).await?;
    state.wakeups.announce(&changed);
    let new_id = new_id.ok_or_else(|| {
        HttpError::not_found(format!("queue '{queue}' has no archived message {msg_id}"))
    })?;
    Ok(Json(Requeued {
        queue,
        archived_msg_id: msg_id,
        msg_id: new_id,
    }))
}
