//! Waiting for tasks to finish, fed by the `tasker_task_events` NOTIFY channel
//! (one LISTEN connection per watcher, however many tasks are awaited).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::state::TaskState;
use crate::wake::TASK_EVENTS;

#[derive(Deserialize)]
struct Event {
    task_id: Uuid,
    state: String,
}

type Waiters = Arc<Mutex<HashMap<Uuid, watch::Sender<Option<TaskState>>>>>;

/// Delivers task state changes to whoever waits for them.
#[derive(Clone)]
pub struct TaskWatcher {
    pool: PgPool,
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
    /// Starts listening. The listener task lives until the pool is closed.
    pub async fn start(pool: &PgPool) -> Result<TaskWatcher, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(TASK_EVENTS).await?;
        let waiters: Waiters = Arc::default();
        let w = waiters.clone();
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        let Ok(ev) = serde_json::from_str::<Event>(n.payload()) else {
                            continue;
                        };
                        let Ok(state) = ev.state.parse::<TaskState>() else {
                            continue;
                        };
                        if let Ok(m) = w.lock() {
                            if let Some(tx) = m.get(&ev.task_id) {
                                let _ = tx.send(Some(state));
                            }
                        }
                    }
                    // Reconnected: wake every waiter so it re-reads the state.
                    Ok(None) => {
                        if let Ok(m) = w.lock() {
                            for tx in m.values() {
                                tx.send_modify(|_| {});
                            }
                        }
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
                let state = crate::store::task::state(&self.pool, task_id).await?;
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
                let state = crate::store::task::state(&self.pool, task_id).await?;
                Err(WaitError::Timeout {
                    task_id,
                    state: state.unwrap_or_default(),
                    waited: timeout,
                })
            }
        }
    }
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
