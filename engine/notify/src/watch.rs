//! Waiting for tasks to finish, fed by the `tasker_task_events` NOTIFY channel
//! (one LISTEN connection per watcher, however many tasks are awaited) and,
//! for changes announced through the same [`Wakeups`], directly by
//! [`Wakeups::task_event`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use uuid::Uuid;

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
    /// pool is closed.
    pub async fn start(wakeups: &Wakeups) -> Result<TaskWatcher, sqlx::Error> {
        let mut listener = PgListener::connect_with(wakeups.pool()).await?;
        listener.listen(TASK_EVENTS).await?;
        let waiters: Waiters = Arc::default();
        wakeups.add_watcher(&waiters);
        marked(wakeups, &mut listener, &waiters).await;
        let w = waiters.clone();
        let wakeups_here = wakeups.clone();
        tokio::spawn(async move {
            let wakeups = wakeups_here;
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        let Ok(ev) = serde_json::from_str::<Event>(n.payload()) else {
                            continue;
                        };
                        // Changes announced through our own Wakeups were
                        // delivered directly.
                        if ev.origin.as_deref() == Some(wakeups.token()) {
                            continue;
                        }
                        let Ok(state) = ev.state.parse::<TaskState>() else {
                            continue;
                        };
                        deliver(&w, ev.task_id, state);
                    }
                    // Reconnected: wake every waiter so it re-reads the state.
                    Ok(None) => {
                        wake_all(&w);
                        marked(&wakeups, &mut listener, &w).await;
                    }
                    // The pool was closed: nobody can wait any more. Ending
                    // here drops the LISTEN connection (held until now, it
                    // kept the database busy for as long as the process lived).
                    Err(sqlx::Error::PoolClosed) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
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

/// Marks the watcher's listening session, so other processes announce their
/// changes to it, and wakes every follower once other processes have seen
/// the mark: until then they may have announced a change to nobody.
async fn marked(wakeups: &Wakeups, listener: &mut PgListener, waiters: &Waiters) {
    wakeups.mark_listener(listener).await;
    let waiters = Arc::downgrade(waiters);
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
