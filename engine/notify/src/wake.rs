//! A queue reader's wake-ups: [`Wake`], made by
//! [`Wakeups::listen`](crate::Wakeups::listen).
//!
//! Bounded by construction: wake-ups collapse into a single pending permit
//! (`tokio::sync::Notify`), so a burst of notifications while the reader is
//! busy yields exactly one extra read, never a queue of them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

pub use tasker_config::Mode;

/// The LISTEN channel that wakes readers of `queue`.
pub fn notify_channel(queue: &str) -> String {
    format!("tasker_queue_{queue}")
}

/// A reader's source of wake-ups.
pub struct Wake {
    notify: Arc<Notify>,
    poll: Option<Duration>,
}

impl Wake {
    pub(crate) fn new(notify: Arc<Notify>, poll: Option<Duration>) -> Wake {
        Wake { notify, poll }
    }

    /// Returns at the next wake-up or poll tick.
    pub async fn wait(&mut self) {
        match self.poll {
            Some(every) => {
                tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep(every) => {}
                }
            }
            None => self.notify.notified().await,
        }
    }
}
