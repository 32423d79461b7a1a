//! Wake-ups for queue readers: LISTEN/NOTIFY with a fallback poll.
//!
//! Senders call [`hint`] *after* committing messages to a queue; it NOTIFYs
//! [`queue::notify_channel`] from a separate, tiny statement. NOTIFY is not
//! sent inside the data transactions on purpose: PostgreSQL serialises the
//! commits of all notifying transactions on one lock held while the commit
//! flushes, which capped throughput at a few hundred steps per second (and is
//! why PGMQ's own `enable_notify_insert` trigger is not used either). Hints are
//! coalesced per channel: while one NOTIFY is being sent, further hints set a
//! flag that causes exactly one more, so no commit is left without a wake-up
//! issued after it.
//!
//! A listener task turns notifications into a wake-up; a reader calls
//! [`Wake::wait`] between reads. Readers in the sending process are also woken
//! directly, without the round trip through PostgreSQL.
//!
//! Bounded by construction: wake-ups collapse into a single pending permit
//! (`tokio::sync::Notify`), so a burst of notifications while the reader is
//! busy yields exactly one extra read, never a queue of them. A lost
//! connection also wakes the reader, since notifications may have been missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
        if let Ok(mut local) = local_readers().lock() {
            local
                .entry(hint_key(pool, queue))
                .or_default()
                .push(Arc::downgrade(&notify));
        }
        if mode != Mode::Polling {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen(&queue::notify_channel(queue)).await?;
            let n = notify.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        got = listener.try_recv() => match got {
                            // Our own hints already woke this process's readers.
                            Ok(Some(note)) if note.payload() == process_token() => {}
                            Ok(Some(_)) => n.notify_one(),
                            // Connection lost and re-established: we may have missed some.
                            Ok(None) => n.notify_one(),
                            // The process is shutting down: nothing left to wake.
                            Err(sqlx::Error::PoolClosed) => break,
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
}

/// Identifies this process's hints: a NOTIFY carrying it woke the local
/// readers already (directly, in [`hint`]), so listeners here skip it and a
/// wake-up does not cost a second, empty read.
fn process_token() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| format!("tasker-{}-{}", std::process::id(), uuid::Uuid::now_v7()))
}

/// The NOTIFY channel of task state changes: payload `{"task_id", "state"}`.
pub const TASK_EVENTS: &str = "tasker_task_events";

struct Coalesced {
    dirty: AtomicBool,
    ping: Notify,
}

type HintKey = (String, String);

fn hint_key(pool: &PgPool, queue: &str) -> HintKey {
    (
        pool.connect_options()
            .get_database()
            .unwrap_or_default()
            .to_string(),
        queue::notify_channel(queue),
    )
}

/// Readers in this process, by database and channel: a hint wakes them at
/// once, without the round trip through PostgreSQL.
fn local_readers() -> &'static Mutex<HashMap<HintKey, Vec<std::sync::Weak<Notify>>>> {
    static L: OnceLock<Mutex<HashMap<HintKey, Vec<std::sync::Weak<Notify>>>>> = OnceLock::new();
    L.get_or_init(Default::default)
}

fn hints() -> &'static Mutex<HashMap<HintKey, Arc<Coalesced>>> {
    static H: OnceLock<Mutex<HashMap<HintKey, Arc<Coalesced>>>> = OnceLock::new();
    H.get_or_init(Default::default)
}

/// Wakes the readers of `queue`; call after the transaction that sent to it
/// has committed. Never blocks: the NOTIFY goes out from a background task.
pub fn hint(pool: &PgPool, queue: &str) {
    let key = hint_key(pool, queue);
    // Readers in this process wake at once.
    if let Ok(mut local) = local_readers().lock() {
        if let Some(readers) = local.get_mut(&key) {
            readers.retain(|r| match r.upgrade() {
                Some(n) => {
                    n.notify_one();
                    true
                }
                None => false,
            });
        }
    }
    // Marked dirty under the map lock: the sender decides to exit under the
    // same lock, so a hint is never left on a sender that has gone.
    let (state, spawn) = {
        let Ok(mut map) = hints().lock() else { return };
        let (s, spawn) = match map.get(&key) {
            Some(s) => (s.clone(), false),
            None => {
                let s = Arc::new(Coalesced {
                    dirty: AtomicBool::new(false),
                    ping: Notify::new(),
                });
                map.insert(key.clone(), s.clone());
                (s, true)
            }
        };
        s.dirty.store(true, Ordering::SeqCst);
        (s, spawn)
    };
    state.ping.notify_one();
    if spawn {
        tokio::spawn(send_hints(pool.clone(), key, state));
    }
}

/// Sends one NOTIFY per burst of hints; exits after a quiet second (the next
/// hint starts it again), so an idle pool is not held open.
async fn send_hints(pool: PgPool, key: HintKey, state: Arc<Coalesced>) {
    loop {
        if tokio::time::timeout(Duration::from_secs(1), state.ping.notified())
            .await
            .is_err()
        {
            let Ok(mut map) = hints().lock() else { return };
            if state.dirty.load(Ordering::SeqCst) {
                continue; // a hint raced the timeout: go round once more
            }
            map.remove(&key);
            return;
        }
        if !state.dirty.swap(false, Ordering::SeqCst) {
            continue;
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&key.1)
            .bind(process_token())
            .execute(&pool)
            .await
        {
            tracing::debug!(channel = %key.1, error = %e, "wake-up NOTIFY failed; readers fall back to polling");
        }
    }
}

/// Announces a task's new state (after the commit that made it).
pub fn task_event(pool: &PgPool, task_id: uuid::Uuid, state: crate::state::TaskState) {
    let pool = pool.clone();
    tokio::spawn(async move {
        let payload =
            serde_json::json!({ "task_id": task_id, "state": state.as_str() }).to_string();
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(TASK_EVENTS)
            .bind(payload)
            .execute(&pool)
            .await
        {
            tracing::debug!(%task_id, error = %e, "task event NOTIFY failed");
        }
    });
}
