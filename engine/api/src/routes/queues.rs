//! Queue routes: depth and age of every queue.

use axum::extract::State;
use axum::Json;

use crate::error::HttpError;
use crate::types::*;
use crate::ApiState;
use tasker_store::queue;
use tasker_store::template as tstore;

/// Depth and age of every pool's step queue (each namespace's own included)
/// and of the results queue.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses(
        (status = 200, description = "The queues", body = QueueList),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_queues(State(state): State<ApiState>) -> Result<Json<QueueList>, HttpError> {
    let mut names: Vec<(Option<String>, Option<String>, String)> = tstore::pools(&state.pool)
        .await?
        .into_iter()
        .map(|(pool, q, is_namespace)| (is_namespace.then(|| pool.clone()), Some(pool), q))
        .collect();
    names.push((None, None, queue::RESULTS_QUEUE.to_string()));
    let mut conn = state.pool.acquire().await?;
    let mut queues = Vec::with_capacity(names.len());
    for (namespace, pool, name) in names {
        let s = queue::stats(&mut conn, &name)
            .await
            .map_err(|e| HttpError::internal(&e))?;
        queues.push(QueueInfo {
            queue_name: s.queue_name,
            namespace,
            pool,
            queue_length: s.queue_length,
            newest_msg_age_sec: s.newest_msg_age_sec,
            oldest_msg_age_sec: s.oldest_msg_age_sec,
            total_messages: s.total_messages,
        });
    }
    Ok(Json(QueueList { queues }))
}
