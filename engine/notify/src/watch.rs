//! Waiting for tasks to finish, fed by the `tasker_task_events` NOTIFY channel
//! (one LISTEN session per watcher, however many tasks are awaited, which
//! survives the database: see `session.rs`) and, for changes announced
//! through the same [`Wakeups`], directly by [`Wakeups::task_event`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use uuid::Uuid;

use crate::session::Session;
use crate::waiters::{deliver, wake_all, Waiters};
use crate::wakeups::SEEN_AFTER;
use crate::{Wakeups, TASK_EVENTS};
use tasker_model::state::TaskState;

#[derive(Deserialize)]
struct Event {
    task_id: Uuid,
    state: String,
    /// The announcing process (absent from older senders).
    #[serde(default)]
    origin: Option<String>,
}

/// Delivers task state changes to whoever waits for them.
#[derive(Clone)]
pub struct TaskWatcher {
    wakeups: Wakeups,
    waiters: Waiters,
}

/// Why a wait ended without a terminal state.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("task {task_id} still {state} after {waited:?}")]
    Timeout {
        task_id: Uuid,
        state: String,
        waited: Duration,
    },
    #[error("task {0} not found")]
    NotFound(Uuid),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl TaskWatcher {
    /// Starts a watcher of the tasks of `wakeups`' database; changes announced
    /// through `wakeups` arrive directly. The listener task lives until the
    /// pool is closed. When the database cannot be reached now, the LISTEN
    /// session is established once it can.
    pub async fn start(wakeups: &Wakeups) -> Result<TaskWatcher, sqlx::Error> {
        let waiters: Waiters = Arc::default();
        wakeups.add_watcher(&waiters);
        // Each new connection of the session (the first, and each after the
        // database was lost) wakes every follower so it re-reads its task's
        // state: changes may have been missed, or announced to nobody by
        // processes that had not seen the session yet.
        let followers = Arc::downgrade(&waiters);
        let on_connect = Arc::new(move || {
            if let Some(w) = followers.upgrade() {
                wake_all(&w);
                wake_all_later(Arc::downgrade(&w));
            }
        });
        let mut session = Session::open(wakeups, TASK_EVENTS, on_connect).await?;
        let w = waiters.clone();
        let wakeups_here = wakeups.clone();
        tokio::spawn(async move {
            let wakeups = wakeups_here;
            // Ends when the pool is closed: nobody can wait any more. Ending
            // drops the LISTEN connection (held until then, it kept the
            // database busy for as long as the process lived).
            while let Some(n) = session.next().await {
                let Ok(ev) = serde_json::from_str::<Event>(n.payload()) else {
                    continue;
                };
                // Changes announced through our own Wakeups were delivered
                // directly.
                if ev.origin.as_deref() == Some(wakeups.token()) {
                    continue;
                }
                let Ok(state) = ev.state.parse::<TaskState>() else {
                    continue;
                };
                deliver(&w, ev.task_id, state);
            }
            session.close().await;
        });
        Ok(TaskWatcher {
            wakeups: wakeups.clone(),
            waiters,
        })
    }

    /// Follows `task_id`'s state: the receiver sees `Some(state)` at each
    /// state change announced on [`TASK_EVENTS`] after this call, and a
    /// notification with an unchanged value when the LISTEN connection was
    /// re-established (changes may have been missed: re-read the task). Any
    /// number of subscriptions share the one LISTEN connection; the task stops
    /// being followed when the last [`Subscription`] for it is dropped.
    pub fn subscribe(&self, task_id: Uuid) -> Subscription {
        let rx = match self.waiters.lock() {
            Ok(mut m) => m
                .entry(task_id)
                .or_insert_with(|| watch::channel(None).0)
                .subscribe(),
            // A poisoned map: a receiver that never fires (callers time out).
            Err(_) => watch::channel(None).1,
        };
        Subscription {
            rx,
            task_id,
            waiters: self.waiters.clone(),
        }
    }

    /// Waits until the task reaches a terminal state (or `blocked_by_failures`,
    /// which needs an operator) and returns it.
    pub async fn wait(&self, task_id: Uuid, timeout: Duration) -> Result<TaskState, WaitError> {
        let mut sub = self.subscribe(task_id);
        let result = tokio::time::timeout(timeout, async {
            loop {
                // Read after subscribing, so a change between the two is not missed.
                let state = tasker_store::task::state(self.wakeups.pool(), task_id).await?;
                let state: TaskState = state
                    .ok_or(WaitError::NotFound(task_id))?
                    .parse()
                    .map_err(|_| WaitError::NotFound(task_id))?;
                if settled(state) {
                    return Ok(state);
                }
                if sub.rx.changed().await.is_err() {
                    return Err(WaitError::NotFound(task_id));
                }
                if let Some(s) = *sub.rx.borrow_and_update() {
                    if settled(s) {
                        return Ok(s);
                    }
                }
            }
        })
        .await;
        drop(sub);
        match result {
            Ok(r) => r,
            Err(_) => {
                let state = tasker_store::task::state(self.wakeups.pool(), task_id).await?;
                Err(WaitError::Timeout {
                    task_id,
                    state: state.unwrap_or_default(),
                    waited: timeout,
                })
            }
        }
    }
}

/// Wakes every follower once more after [`SEEN_AFTER`]: by then other
/// processes have seen a new connection of the watcher's session, and what
/// they announced to nobody before is read.
fn wake_all_later(waiters: std::sync::Weak<std::sync::Mutex<crate::waiters::WaiterMap>>) {
    tokio::spawn(async move {
        tokio::time::sleep(SEEN_AFTER).await;
        if let Some(w) = waiters.upgrade() {
            wake_all(&w);
        }
    });
}

/// One follower of a task's state (see [`TaskWatcher::subscribe`]).
pub struct Subscription {
    /// The latest announced state; `changed()` fires at each announcement.
    pub rx: watch::Receiver<Option<TaskState>>,
    task_id: Uuid,
    waiters: Waiters,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut m) = self.waiters.lock() {
            // Our own receiver is still alive here: the last one counts 1.
            if m.get(&self.task_id)
                .is_some_and(|tx| tx.receiver_count() <= 1)
            {
                m.remove(&self.task_id);
            }
        }
    }
}

/// Whether a task has stopped moving by itself: a terminal state, or
/// `blocked_by_failures` (which needs an operator).
pub fn settled(s: TaskState) -> bool {
    s.is_terminal() || s == TaskState::BlockedByFailures
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sqlx::PgPool;

    async fn next_state(sub: &mut Subscription) -> Option<TaskState> {
        tokio::time::timeout(Duration::from_secs(5), sub.rx.changed())
            .await
            .ok()?
            .ok()?;
        *sub.rx.borrow_and_update()
    }

    async fn announce_as(pool: &PgPool, origin: &str, task_id: Uuid, state: &str) {
        let payload = json!({ "task_id": task_id, "state": state, "origin": origin });
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(TASK_EVENTS)
            .bind(payload.to_string())
            .execute(pool)
            .await
            .unwrap();
    }

    #[sqlx::test(migrations = false)]
    async fn changes_made_here_arrive_directly_and_other_processes_by_notify(pool: PgPool) {
        let wakeups = Wakeups::new(&pool);
        let watcher = TaskWatcher::start(&wakeups).await.unwrap();
        let task = Uuid::now_v7();
        let mut sub = watcher.subscribe(task);

        // Announced through the same Wakeups (no other listener, so no NOTIFY either).
        wakeups.task_event(task, TaskState::StepsInProcess);
        assert_eq!(next_state(&mut sub).await, Some(TaskState::StepsInProcess));

        // Another process's announcement arrives through the channel.
        announce_as(&pool, "tasker-wake-0-another-process", task, "complete").await;
        assert_eq!(next_state(&mut sub).await, Some(TaskState::Complete));

        // This process's own NOTIFY is skipped: it was delivered directly.
        announce_as(&pool, wakeups.token(), task, "error").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(*sub.rx.borrow(), Some(TaskState::Complete));
        drop(sub);
        pool.close().await;
    }
}
