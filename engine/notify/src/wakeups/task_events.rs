//! Task events on [`TASK_EVENTS`], batched: the events announced while one
//! batch is being sent go out together in the next, as one statement (one
//! commit) of many NOTIFYs. A worker that applies its own successes announces
//! a task event for every task a report moved; one NOTIFY statement each took
//! a pooled connection and a commit apiece, and starved the worker's claims
//! and reports of connections (`docs/performance.md`, session 11).

use super::*;

/// Task events sent in one statement at most.
const EVENTS_PER_STATEMENT: usize = 500;

/// The task events waiting for the sender, and whether a sender runs.
#[derive(Default)]
pub(super) struct PendingEvents {
    payloads: Vec<String>,
    sending: bool,
}

impl Wakeups {
    /// Queues `payload` for [`TASK_EVENTS`]; starts the sender when none runs.
    pub(super) fn send_task_event(&self, payload: String) {
        let spawn = {
            let Ok(mut pending) = self.inner.task_events.lock() else {
                return;
            };
            pending.payloads.push(payload);
            !std::mem::replace(&mut pending.sending, true)
        };
        if spawn {
            tokio::spawn(send_task_events(self.clone()));
        }
    }
}

/// Sends what is pending, batch after batch, until nothing is; then marks
/// itself gone (under the lock, so no event is left without a sender).
async fn send_task_events(wakeups: Wakeups) {
    loop {
        let batch = {
            let Ok(mut pending) = wakeups.inner.task_events.lock() else {
                return;
            };
            if pending.payloads.is_empty() {
                pending.sending = false;
                return;
            }
            std::mem::take(&mut pending.payloads)
        };
        if !wakeups.others_listen().await {
            continue;
        }
        for chunk in batch.chunks(EVENTS_PER_STATEMENT) {
            wakeups.notify(TASK_EVENTS, chunk).await;
        }
    }
}
