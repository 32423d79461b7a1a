//! `GET /v1/tasks/{id}/events`: a task's state changes as Server-Sent Events.
//!
//! Fed by the process's one [`TaskWatcher`](tasker_notify::watch::TaskWatcher) (LISTEN
//! on `tasker_task_events`). Each announcement makes the stream read the
//! task's transition history once and send what it has not sent yet, so no
//! change is lost even when announcements coalesce; a slow fallback re-read
//! covers a NOTIFY that never arrived.
//!
//! Events: first `state` with the task's current state, then `state` for each
//! task transition and `step` for each step transition, in the order they
//! happened; the stream ends after the task reaches a terminal state or
//! `blocked_by_failures`. Comments are sent as keep-alives.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use sqlx::PgPool;
use uuid::Uuid;

use super::error::{ErrorBody, HttpError};
use super::extract::ApiPath;
use super::ApiState;
pub use tasker_api_types::{StepStateEvent, TaskEvent, TaskStateEvent};
use tasker_model::state::TaskState;
use tasker_notify::watch::{settled, Subscription};
use tasker_store::analytics::{self, HistoryEntry};
use tasker_store::task;

/// Re-read this often even without an announcement (a lost NOTIFY).
const FALLBACK: Duration = Duration::from_secs(30);
/// Keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Follow {
    pool: PgPool,
    task_id: Uuid,
    sub: Subscription,
    seen: HashSet<(String, i64)>,
    pending: VecDeque<Event>,
    done: bool,
}

/// `ev` as an SSE event (its wire form is [`TaskEvent`]'s).
fn sse_event(ev: &TaskEvent) -> Event {
    match ev.data() {
        Ok(data) => Event::default().event(ev.name()).data(data),
        Err(_) => Event::default().event("error").data("unserializable event"),
    }
}

impl Follow {
    /// Queues the transitions not sent yet; marks the stream done when the task settled.
    fn absorb(&mut self, history: Vec<HistoryEntry>) {
        for h in history {
            if !self.seen.insert((h.kind.clone(), h.id)) {
                continue;
            }
            if h.kind == "task" {
                if h.to_state.parse::<TaskState>().is_ok_and(settled) {
                    self.done = true;
                }
                self.pending
                    .push_back(sse_event(&TaskEvent::State(TaskStateEvent {
                        task_id: self.task_id,
                        state: h.to_state,
                        from_state: h.from_state,
                        at: Some(h.created_at),
                    })));
            } else {
                self.pending
                    .push_back(sse_event(&TaskEvent::Step(StepStateEvent {
                        task_id: self.task_id,
                        step: h.step_name.unwrap_or_default(),
                        from_state: h.from_state,
                        state: h.to_state,
                        attempt: h.attempt,
                        at: h.created_at,
                    })));
            }
        }
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Follow)> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some((Ok(ev), self));
            }
            if self.done {
                return None;
            }
            match tokio::time::timeout(FALLBACK, self.sub.rx.changed()).await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(_)) => tokio::time::sleep(FALLBACK).await,
            }
            self.sub.rx.borrow_and_update();
            match analytics::task_history(&self.pool, self.task_id).await {
                Ok(h) => self.absorb(h),
                Err(e) => {
                    tracing::warn!(task_id = %self.task_id, error = %e, "reading task history for an event stream failed");
                    self.done = true;
                    self.pending
                        .push_back(sse_event(&TaskEvent::Error("history unavailable".into())));
                }
            }
        }
    }
}

/// Live state changes of a task (Server-Sent Events) until it finishes.
///
/// `event: state` carries a [`TaskStateEvent`], `event: step` a
/// [`StepStateEvent`]. The first event is the current state; the stream
/// closes after a terminal state or `blocked_by_failures`.
#[utoipa::path(get, path = "/v1/tasks/{id}/events", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "An event stream of `state` and `step` events", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid task id", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn task_events(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, HttpError> {
    let watcher = state.watcher().await?;
    // Subscribe before reading, so no change between the read and the
    // subscription is missed.
    let sub = watcher.subscribe(id);
    let history = analytics::task_history(&state.pool, id).await?;
    let current = match history.iter().rev().find(|h| h.kind == "task") {
        Some(h) => h.to_state.clone(),
        None => task::state(&state.pool, id)
            .await?
            .ok_or_else(|| HttpError::not_found(format!("task {id} not found")))?,
    };
    let mut follow = Follow {
        pool: state.pool.clone(),
        task_id: id,
        sub,
        seen: history.iter().map(|h| (h.kind.clone(), h.id)).collect(),
        pending: VecDeque::new(),
        done: current.parse::<TaskState>().is_ok_and(settled),
    };
    follow
        .pending
        .push_back(sse_event(&TaskEvent::State(TaskStateEvent {
            task_id: id,
            state: current,
            from_state: None,
            at: None,
        })));
    let stream = futures::stream::unfold(follow, Follow::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
