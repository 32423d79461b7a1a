//! The followers of tasks' states in one task watcher: a map from task to a
//! `tokio::sync::watch` sender, shared by the watcher and the [`Wakeups`]
//! that delivers changes announced in this process.
//!
//! [`Wakeups`]: crate::Wakeups

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use uuid::Uuid;

use tasker_model::state::TaskState;

/// Task id → the sender its subscriptions watch.
pub(crate) type WaiterMap = HashMap<Uuid, watch::Sender<Option<TaskState>>>;
/// A watcher's waiter map.
pub(crate) type Waiters = Arc<Mutex<WaiterMap>>;

/// Tells whoever follows `task_id` here its new state.
pub(crate) fn deliver(waiters: &Mutex<WaiterMap>, task_id: Uuid, state: TaskState) {
    if let Ok(m) = waiters.lock() {
        if let Some(tx) = m.get(&task_id) {
            let _ = tx.send(Some(state));
        }
    }
}

/// Wakes every follower so it re-reads its task's state.
pub(crate) fn wake_all(waiters: &Mutex<WaiterMap>) {
    if let Ok(m) = waiters.lock() {
        for tx in m.values() {
            tx.send_modify(|_| {});
        }
    }
}
