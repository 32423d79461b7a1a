//! Waiting for tasks to finish, fed by the `tasker_task_events` NOTIFY channel
//! (one LISTEN connection per watcher, however many tasks are awaited) and,
//! for changes made in this process, directly by [`crate::wake::task_event`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::wake::TASK_EVENTS;
use tasker_model::state::TaskState;

#[derive(Deserialize)]
struct Event {
    task_id: Uuid,
    state: String,
    /// The announcing process (absent from older senders).
    #[serde(default)]
    origin: Option<String>,
}

type WaiterMap = HashMap<Uuid, watch::Sender<Option<TaskState>>>;
type Waiters = Arc<Mutex<WaiterMap>>;
type Watchers = Mutex<HashMap<String, Vec<Weak<Mutex<WaiterMap>>>>>;

/// This process's watchers, by database.
fn local_watchers() -> &'static Watchers {
    static L: OnceLock<Watchers> = OnceLock::new();
    L.get_or_init(Default::default)
}

/// Tells whoever follows `task_id` here its new state.
fn deliver(waiters: &Mutex<WaiterMap>, task_id: Uuid, state: TaskState) {
    if let Ok(m) = waiters.lock() {
        if let Some(tx) = m.get(&task_id) {
            let _ = tx.send(Some(state));
        }
    }
}

/// Delivers a task state change made in this process to this process's
/// watchers of `database`, without the round trip through PostgreSQL.
pub(crate) fn deliver_locally(database: &str, task_id: Uuid, state: TaskState) {
    let Ok(mut all) = local_watchers().lock() else {
        return;
    };
    if let Some(watchers) = all.get_mut(database) {
        watchers.retain(|w| match w.upgrade() {
            Some(waiters) => {
                deliver(&waiters, task_id, state);
                true
            }
            None => false,
        });
    }
}

/// Wakes every follower so it re-reads its task's state.
fn wake_all(waiters: &Mutex<WaiterMap>) {
    if let Ok(m) = waiters.lock() {
        for tx in m.values() {
            tx.send_modify(|_| {});
        }
    }
}

/// Delivers task state changes to whoever waits for them.
#[derive(Clone)]
pub struct TaskWatcher {
    pool: PgPool,
    waiters: Waiters,
}

/// A task's state as stored (`None`: no such task).
async fn task_state(pool: &PgPool, task_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT state FROM tasker.tasks WHERE id = $1")
        .bind(task_id)
        .fetch_optional(pool)
        .await
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
    /// Starts listening. The listener task lives until the pool is closed.
    pub async fn start(pool: &PgPool) -> Result<TaskWatcher, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(TASK_EVENTS).await?;
        let waiters: Waiters = Arc::default();
        if let Ok(mut all) = local_watchers().lock() {
            let here = all.entry(crate::wake::database_of(pool)).or_default();
            // Only live watchers are kept: the registry never outgrows them.
            here.retain(|w| w.strong_count() > 0);
            here.push(Arc::downgrade(&waiters));
        }
        marked(&mut listener, &waiters).await;
        let w = waiters.clone();
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        let Ok(ev) = serde_json::from_str::<Event>(n.payload()) else {
                            continue;
                        };
                        // This process's own changes were delivered directly.
                        if ev.origin.as_deref() == Some(crate::wake::process_token()) {
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
                        marked(&mut listener, &w).await;
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
            pool: pool.clone(),
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
                let state = task_state(&self.pool, task_id).await?;
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
                let state = task_state(&self.pool, task_id).await?;
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
async fn marked(listener: &mut PgListener, waiters: &Waiters) {
    crate::wake::mark_listener(listener).await;
    let waiters = Arc::downgrade(waiters);
    tokio::spawn(async move {
        tokio::time::sleep(crate::wake::SEEN_AFTER).await;
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
        let watcher = TaskWatcher::start(&pool).await.unwrap();
        let task = Uuid::now_v7();
        let mut sub = watcher.subscribe(task);

        // Made in this process (no other process listens, so no NOTIFY either).
        crate::wake::task_event(&pool, task, TaskState::StepsInProcess);
        assert_eq!(next_state(&mut sub).await, Some(TaskState::StepsInProcess));

        // Another process's announcement arrives through the channel.
        announce_as(&pool, "tasker-wake-0-another-process", task, "complete").await;
        assert_eq!(next_state(&mut sub).await, Some(TaskState::Complete));

        // This process's own NOTIFY is skipped: it was delivered directly.
        announce_as(&pool, crate::wake::process_token(), task, "error").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(*sub.rx.borrow(), Some(TaskState::Complete));
        drop(sub);
        pool.close().await;
    }
}
