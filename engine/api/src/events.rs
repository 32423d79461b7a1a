//! `GET /v1/tasks/{id}/events`: a task's state changes as Server-Sent Events.
//!
//! Fed by the process's one [`TaskWatcher`](tasker_notify::watch::TaskWatcher) (LISTEN
//! on `tasker_task_events`). Opening costs two index probes (the current
//! state and the last transition ids), not the history. Each announcement
//! makes the stream read, in pages, the transitions after the last ids known
//! to be settled and send those it has not sent yet, so no change is lost
//! even when announcements coalesce or commit out of id order; a slow
//! fallback re-read covers a NOTIFY that never arrived. Open streams are
//! capped ([`crate::event_slots`]).
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
use axum::Extension;
use futures::Stream;
use sqlx::PgPool;
use uuid::Uuid;

use super::error::{ErrorBody, HttpError};
use super::extract::ApiPath;
use super::ApiState;
use crate::event_slots::Slot;
use crate::keys::Principal;
pub use tasker_api_types::{StepStateEvent, TaskEvent, TaskStateEvent};
use tasker_model::state::TaskState;
use tasker_notify::watch::{settled, Subscription};
use tasker_store::analytics::{self, HistoryEntry};

/// Re-read this often even without an announcement (a lost NOTIFY).
const FALLBACK: Duration = Duration::from_secs(30);
/// Keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Transitions read per query; a busier moment takes more than one page.
const PAGE: i64 = 500;
/// A transition this much older than now can no longer be preceded by one
/// not yet committed (transactions writing transitions are far shorter):
/// the read cursor moves past it for good.
const SETTLE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

struct Follow {
    pool: PgPool,
    task_id: Uuid,
    sub: Subscription,
    /// Every task and step transition up to these ids has been sent.
    settled_task: i64,
    settled_step: i64,
    /// Transitions after the settled ids already sent.
    seen: HashSet<(bool, i64)>,
    pending: VecDeque<Event>,
    done: bool,
    /// Held while the stream is open.
    _slot: Slot,
}

/// `ev` as an SSE event (its wire form is [`TaskEvent`]'s).
fn sse_event(ev: &TaskEvent) -> Event {
    match ev.data() {
        Ok(data) => Event::default().event(ev.name()).data(data),
        Err(_) => Event::default().event("error").data("unserializable event"),
    }
}

impl Follow {
    /// Queues one transition unless sent already; marks the stream done when
    /// the task settled.
    fn absorb(&mut self, h: HistoryEntry) {
        let is_task = h.kind == "task";
        if !self.seen.insert((is_task, h.id)) {
            return;
        }
        if is_task {
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

    /// Reads the transitions after the settled ids, page by page, and queues
    /// the new ones; then moves the settled ids past what is old enough.
    async fn read_new(&mut self) -> Result<(), sqlx::Error> {
        let cutoff = chrono::Utc::now() - SETTLE;
        let (mut after_task, mut after_step) = (self.settled_task, self.settled_step);
        let (mut settle_task, mut settle_step) = (self.settled_task, self.settled_step);
        // Contiguous from the settled ids: a young transition stops the
        // settled id of its kind from moving further.
        let (mut task_open, mut step_open) = (true, true);
        loop {
            let page =
                analytics::history_after(&self.pool, self.task_id, after_task, after_step, PAGE)
                    .await?;
            let (mut tasks, mut steps) = (0, 0);
            for h in page {
                let (after, settle, open, count) = if h.kind == "task" {
                    (
                        &mut after_task,
                        &mut settle_task,
                        &mut task_open,
                        &mut tasks,
                    )
                } else {
                    (
                        &mut after_step,
                        &mut settle_step,
                        &mut step_open,
                        &mut steps,
                    )
                };
                *after = (*after).max(h.id);
                *count += 1;
                if *open && h.created_at < cutoff {
                    *settle = (*settle).max(h.id);
                } else {
                    *open = false;
                }
                self.absorb(h);
            }
            if tasks < PAGE && steps < PAGE {
                break;
            }
        }
        self.settled_task = settle_task;
        self.settled_step = settle_step;
        self.seen
            .retain(|&(is_task, id)| id > if is_task { settle_task } else { settle_step });
        Ok(())
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
            if let Err(e) = self.read_new().await {
                tracing::warn!(task_id = %self.task_id, error = %e, "reading task history for an event stream failed");
                self.done = true;
                self.pending
                    .push_back(sse_event(&TaskEvent::Error("history unavailable".into())));
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
        (status = 503, description = "As many event streams open as `web.max_event_streams` (or `..._per_key`) allows", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn task_events(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, HttpError> {
    let slot = state.event_slots.take(&who.name)?;
    let watcher = state.watcher().await?;
    // Subscribe before reading, so no change between the read and the
    // subscription is missed. The stream starts at the current state: the
    // history before it is not sent (GET .../transitions has it).
    let sub = watcher.subscribe(id);
    let (current, task_mark, step_mark) = analytics::history_mark(&state.pool, id)
        .await?
        .ok_or_else(|| HttpError::not_found(format!("task {id} not found")))?;
    let mut follow = Follow {
        pool: state.pool.clone(),
        task_id: id,
        sub,
        settled_task: task_mark,
        settled_step: step_mark,
        seen: HashSet::new(),
        pending: VecDeque::new(),
        done: current.parse::<TaskState>().is_ok_and(settled),
        _slot: slot,
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
