//! Wake-ups for queue readers: LISTEN/NOTIFY with a fallback poll.
//!
//! Senders call [`hint`] *after* committing messages to a queue; it NOTIFYs
//! [`notify_channel`] from a separate, tiny statement. NOTIFY is not
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
//! directly, without the round trip through PostgreSQL, and the NOTIFY is
//! skipped altogether while no other process listens (listening sessions name
//! themselves in `application_name`; a sender looks at `pg_stat_activity` at
//! most once a second, and a new listener wakes its reader once more after
//! that second, so nothing sent before it was seen waits for a poll).
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

pub use tasker_config::Mode;

/// The LISTEN channel that wakes readers of `queue` (see [`hint`]).
pub fn notify_channel(queue: &str) -> String {
    format!("tasker_queue_{queue}")
}

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
            listener.listen(&notify_channel(queue)).await?;
            mark_as_listener(&mut listener, &notify).await;
            let n = notify.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        got = listener.try_recv() => match got {
                            // Our own hints already woke this process's readers.
                            Ok(Some(note)) if note.payload() == process_token() => {}
                            Ok(Some(_)) => n.notify_one(),
                            // Connection lost: we may have missed some. The
                            // next session needs the listener's mark again.
                            Ok(None) => {
                                n.notify_one();
                                mark_as_listener(&mut listener, &n).await;
                            }
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
/// wake-up does not cost a second, empty read. It is also the
/// `application_name` of this process's listening sessions (at most 52 of
/// the 63 bytes PostgreSQL keeps), which is how other processes see them.
pub(crate) fn process_token() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| {
        format!(
            "{LISTENER_PREFIX}{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        )
    })
}

/// How a listening session names itself (`application_name`).
const LISTENER_PREFIX: &str = "tasker-wake-";

/// How long an answer of [`others_listen`] is trusted.
const LISTENERS_SEEN_FOR: Duration = Duration::from_secs(1);

/// Other processes have seen a newly marked listening session by then: a
/// listener re-checks what it waits for once, this long after
/// [`mark_listener`], for whatever they sent without a NOTIFY meanwhile.
pub(crate) const SEEN_AFTER: Duration = Duration::from_millis(1_100);

/// Names a listening session after this process (see [`others_listen`]).
pub(crate) async fn mark_listener(listener: &mut PgListener) {
    if let Err(e) = sqlx::query("SELECT set_config('application_name', $1, false)")
        .bind(process_token())
        .execute(&mut *listener)
        .await
    {
        tracing::debug!(error = %e, "marking a listening session failed; other processes may not wake this one");
    }
}

/// Marks a queue listener's session and wakes its reader once more after
/// [`SEEN_AFTER`].
async fn mark_as_listener(listener: &mut PgListener, notify: &Arc<Notify>) {
    mark_listener(listener).await;
    let notify = notify.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SEEN_AFTER).await;
        notify.notify_one();
    });
}

/// Whether a process other than this one listens for queue wake-ups on
/// `database`. A NOTIFY nobody else hears is pure cost: a statement and a
/// commit on the database, and a wake-up of every listening session, all
/// competing with the step path for the same cores (with orchestrator and
/// worker in one process, 8% of the linear latency and 10% of the
/// throughput on the 2-core VM). Asked at most once per
/// [`LISTENERS_SEEN_FOR`] per database; an error counts as yes.
async fn others_listen(pool: &PgPool, database: &str) -> bool {
    static SEEN: OnceLock<Mutex<HashMap<String, (std::time::Instant, bool)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Ok(map) = seen.lock() {
        if let Some((at, yes)) = map.get(database) {
            if at.elapsed() < LISTENERS_SEEN_FOR {
                return *yes;
            }
        }
    }
    let yes = sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                         WHERE datname = current_database()
                           AND application_name LIKE $1 || '%'
                           AND application_name <> $2)",
    )
    .bind(LISTENER_PREFIX)
    .bind(process_token())
    .fetch_one(pool)
    .await
    .unwrap_or(true);
    if let Ok(mut map) = seen.lock() {
        map.insert(database.to_string(), (std::time::Instant::now(), yes));
    }
    yes
}

/// The NOTIFY channel of task state changes: payload `{"task_id", "state",
/// "origin"}` (`origin`: the announcing process's token).
pub const TASK_EVENTS: &str = "tasker_task_events";

struct Coalesced {
    dirty: AtomicBool,
    ping: Notify,
}

type HintKey = (String, String);

fn hint_key(pool: &PgPool, queue: &str) -> HintKey {
    (database_of(pool), notify_channel(queue))
}

/// The name of the database `pool` connects to: the key of this process's
/// local deliveries (readers, task watchers).
pub(crate) fn database_of(pool: &PgPool) -> String {
    pool.connect_options()
        .get_database()
        .unwrap_or_default()
        .to_string()
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
        if !others_listen(&pool, &key.0).await {
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

/// Announces a task's new state (after the commit that made it): to this
/// process's task watchers at once, and on [`TASK_EVENTS`] when another
/// process listens (the payload names this process as its `origin`, so its
/// own watchers skip it).
pub fn task_event(pool: &PgPool, task_id: uuid::Uuid, state: tasker_model::state::TaskState) {
    let database = database_of(pool);
    crate::watch::deliver_locally(&database, task_id, state);
    let pool = pool.clone();
    tokio::spawn(async move {
        if !others_listen(&pool, &database).await {
            return;
        }
        let payload = serde_json::json!({
            "task_id": task_id,
            "state": state.as_str(),
            "origin": process_token(),
        })
        .to_string();
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::ConnectOptions;

    /// This process's own listeners do not count; another process's do, once
    /// the answer kept for `LISTENERS_SEEN_FOR` has run out.
    #[sqlx::test(migrations = false)]
    async fn notify_is_skipped_only_while_no_other_process_listens(pool: PgPool) {
        let db = database_of(&pool);
        let stop = CancellationToken::new();
        let _wake = Wake::start(
            &pool,
            "steps_t",
            Mode::EventDriven,
            Duration::from_secs(1),
            stop.clone(),
        )
        .await
        .unwrap();
        assert!(
            !others_listen(&pool, &db).await,
            "only this process listens"
        );

        let other = (*pool.connect_options())
            .clone()
            .application_name(&format!("{LISTENER_PREFIX}0-another-process"))
            .connect()
            .await
            .unwrap();
        assert!(
            !others_listen(&pool, &db).await,
            "the answer is kept for a while"
        );
        tokio::time::sleep(LISTENERS_SEEN_FOR + Duration::from_millis(50)).await;
        assert!(others_listen(&pool, &db).await, "another process listens");
        sqlx::Connection::close(other).await.unwrap();
        stop.cancel();
    }
}
