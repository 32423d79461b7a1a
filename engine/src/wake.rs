//! Wake-ups for queue readers: LISTEN/NOTIFY with a fallback poll.
//!
//! PGMQ's insert trigger (`pgmq.enable_notify_insert`) NOTIFYs
//! `pgmq.q_<queue>.INSERT` when a message commits. A listener task turns those
//! into a wake-up; a reader calls [`Wake::wait`] between reads.
//!
//! Bounded by construction: wake-ups collapse into a single pending permit
//! (`tokio::sync::Notify`), so a burst of notifications while the reader is
//! busy yields exactly one extra read, never a queue of them. A lost
//! connection also wakes the reader, since notifications may have been missed.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::queue;

pub use crate::config::Mode;

/// A reader's source of wake-ups.
pub struct Wake {
    notify: Arc<Notify>,
    poll: Option<Duration>,
}

impl Wake {
    /// Starts listening for `queue` as `mode` says.
    pub async fn start(
        pool: &PgPool,
        queue: &str,
        mode: Mode,
        poll_interval: Duration,
        shutdown: CancellationToken,
    ) -> Result<Wake, sqlx::Error> {
        let notify = Arc::new(Notify::new());
        if mode != Mode::Polling {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen(&queue::notify_channel(queue)).await?;
            let n = notify.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        got = listener.try_recv() => match got {
                            Ok(Some(_)) => n.notify_one(),
                            // Connection lost and re-established: we may have missed some.
                            Ok(None) => n.notify_one(),
                            Err(e) => {
                                tracing::warn!(error = %e, "queue listener failed; retrying");
                                n.notify_one();
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        }
                    }
                }
            });
        }
        let poll = match mode {
            Mode::EventDriven => None,
            Mode::Polling | Mode::Hybrid => Some(poll_interval),
        };
        Ok(Wake { notify, poll })
    }

    /// Returns at the next notification or poll tick.
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

    /// Wakes the reader from inside the process (e.g. a retry came due).
    pub fn handle(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}
