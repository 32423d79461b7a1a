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
    /// Starts listening. The listener task lives as long as the pool.
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
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Ok(TaskWatcher {
            pool: pool.clone(),
            waiters,
        })
    }

    /// Waits until the task reaches a terminal state (or `blocked_by_failures`,
    /// which needs an operator) and returns it.
    pub async fn wait(&self, task_id: Uuid, timeout: Duration) -> Result<TaskState, WaitError> {
        let (tx, mut rx) = watch::channel(None);
        if let Ok(mut m) = self.waiters.lock() {
            m.insert(task_id, tx);
        }
        let result = tokio::time::timeout(timeout, async {
            loop {
                // Read after registering, so a change between the two is not missed.
                let state = crate::store::task::state(&self.pool, task_id).await?;
                let state: TaskState = state
                    .ok_or(WaitError::NotFound(task_id))?
                    .parse()
                    .map_err(|_| WaitError::NotFound(task_id))?;
                if settled(state) {
                    return Ok(state);
                }
                loop {
                    if rx.changed().await.is_err() {
                        break;
                    }
                    match *rx.borrow_and_update() {
                        Some(s) if settled(s) => return Ok(s),
                        Some(_) => continue,
                        None => break, // reconnect: re-read
                    }
                }
            }
        })
        .await;
        if let Ok(mut m) = self.waiters.lock() {
            m.remove(&task_id);
        }
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

fn settled(s: TaskState) -> bool {
    s.is_terminal() || s == TaskState::BlockedByFailures
}
