//! [`Wakeups`]: one process's wake-ups on one database, as a value.
//!
//! Writers announce what they committed ([`Wakeups::announce`] of the
//! [`Changed`] a store write returns, or [`Wakeups::hint`] /
//! [`Wakeups::task_event`]); queue readers wait on a [`Wake`] made by
//! [`Wakeups::listen`]; task watchers
//! ([`TaskWatcher::start`](crate::watch::TaskWatcher::start)) take one.
//! Everything that shares one `Wakeups` (clones share) is woken directly,
//! without the round trip through PostgreSQL; everything else hears a NOTIFY.
//!
//! NOTIFY is sent after the commit from a separate, tiny statement, not
//! inside the data transactions: PostgreSQL serialises the commits of all
//! notifying transactions on one lock held while the commit flushes, which
//! capped throughput at a few hundred steps per second (and is why PGMQ's own
//! `enable_notify_insert` trigger is not used either). Hints are coalesced per
//! channel: while one NOTIFY is being sent, further hints set a flag that
//! causes exactly one more, so no commit is left without a wake-up issued
//! after it. The NOTIFY is skipped altogether while no listening session
//! other than this value's own is known to exist (listening sessions carry
//! the value's token as `application_name` from their start-up packet on, so
//! a reconnected session is marked too: see `session.rs`; a sender
//! looks at `pg_stat_activity` at most once a second, and a new or
//! reconnected listener wakes its reader at once and once more after that
//! second, so nothing sent before it was seen waits for a poll). Unsure means
//! send: when the look fails, while the database is not known to be up, and
//! for a while after it came back.

mod listeners;
mod task_events;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use tasker_config::Mode;
use tasker_model::change::Changed;
use tasker_model::state::TaskState;
use tasker_store::db::{Availability, Backoff};

use crate::session::Session;
use crate::waiters::{deliver, WaiterMap};
use crate::wake::{notify_channel, Wake};

/// How a listening session names itself (`application_name`).
pub(crate) const LISTENER_PREFIX: &str = "tasker-wake-";

/// How long an answer of [`Wakeups::others_listen`] is trusted.
pub(crate) const LISTENERS_SEEN_FOR: Duration = Duration::from_secs(1);

/// Other processes have seen a new listening session by then: a listener
/// re-checks what it waits for once, this long after each new connection,
/// for whatever they sent without a NOTIFY meanwhile.
pub(crate) const SEEN_AFTER: Duration = Duration::from_millis(1_100);

/// How long a NOTIFY that failed because the database was lost waits for
/// it to answer again before it is given up.
pub(crate) const NOTIFY_RETRY_WITHIN: Duration = Duration::from_secs(5);

/// After the database came back (or a new server start time showed it
/// restarted), every hint is sent as a NOTIFY for this long, whoever seems to
/// listen: other processes' sessions may still be reconnecting.
pub(crate) const UNSURE_AFTER_RECOVERY: Duration = Duration::from_secs(10);

/// The NOTIFY channel of task state changes: payload `{"task_id", "state",
/// "origin"}` (`origin`: the announcing [`Wakeups`]' token).
pub const TASK_EVENTS: &str = "tasker_task_events";

/// One process's wake-ups on one database (see the module doc). Cheap to
/// clone; clones share everything.
#[derive(Clone)]
pub struct Wakeups {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// Whether the database answers, as this process sees it.
    database: Availability,
    /// Names this value's NOTIFYs (so its own listeners skip them: they were
    /// woken directly) and its listening sessions (`application_name`, at
    /// most 52 of the 63 bytes PostgreSQL keeps).
    token: String,
    /// Queue readers, by LISTEN channel.
    readers: Mutex<HashMap<String, Vec<Weak<Notify>>>>,
    /// The coalescing NOTIFY sender of each channel with hints in flight.
    senders: Mutex<HashMap<String, Arc<Coalesced>>>,
    /// Task watchers' waiter maps.
    watchers: Mutex<Vec<Weak<Mutex<WaiterMap>>>>,
    /// The last answer of `others_listen`: when it was asked, the answer,
    /// and the database's [`Availability::changes`] then.
    others: Mutex<Option<(Instant, bool, u64)>>,
    /// The server's start time as `others_listen` last saw it, and when it
    /// last saw it change (a restart this value may not have noticed
    /// otherwise).
    server_start: Mutex<(Option<f64>, Option<Instant>)>,
    /// Task events waiting to be sent (`task_events.rs`).
    task_events: Mutex<task_events::PendingEvents>,
}

struct Coalesced {
    dirty: AtomicBool,
    ping: Notify,
}

impl Wakeups {
    /// Wake-ups on `pool`'s database. Make one per process and database, and
    /// pass clones to whatever reads or writes there.
    pub fn new(pool: &PgPool) -> Wakeups {
        Wakeups::with_availability(pool, Availability::new(pool, Backoff::default()))
    }

    /// [`Wakeups::new`], sharing `database` (the process's view of whether
    /// the database answers; `tasker_store::db::Database::availability`)
    /// rather than making one: an outage is then logged once per process.
    pub fn with_availability(pool: &PgPool, database: Availability) -> Wakeups {
        Wakeups {
            inner: Arc::new(Inner {
                pool: pool.clone(),
                database,
                token: format!(
                    "{LISTENER_PREFIX}{}-{}",
                    std::process::id(),
                    Uuid::now_v7().simple()
                ),
                readers: Mutex::default(),
                senders: Mutex::default(),
                watchers: Mutex::default(),
                others: Mutex::default(),
                server_start: Mutex::default(),
                task_events: Mutex::default(),
            }),
        }
    }

    /// The pool NOTIFYs use (LISTEN sessions connect with its options, each
    /// with a pool of its own).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Whether the database answers, as this process sees it. Whatever uses
    /// the pool may report its failures here and wait for the database
    /// ([`Availability::report`], [`Availability::wait_up`]).
    pub fn database(&self) -> &Availability {
        &self.inner.database
    }

    /// This value's token (see [`TASK_EVENTS`]).
    pub(crate) fn token(&self) -> &str {
        &self.inner.token
    }

    /// Starts waking a reader of `queue` as `mode` says: at every hint
    /// through this value, every NOTIFY from elsewhere (unless polling), and
    /// every `poll_interval` (unless event-driven). The LISTEN session
    /// (unless polling) reconnects by itself after the database was lost,
    /// and is established later when the database cannot be reached now;
    /// errors other than the database's absence are returned.
    pub async fn listen(
        &self,
        queue: &str,
        mode: Mode,
        poll_interval: Duration,
        shutdown: CancellationToken,
    ) -> Result<Wake, sqlx::Error> {
        let notify = Arc::new(Notify::new());
        let channel = notify_channel(queue);
        if let Ok(mut readers) = self.inner.readers.lock() {
            let here = readers.entry(channel.clone()).or_default();
            here.retain(|r| r.strong_count() > 0);
            here.push(Arc::downgrade(&notify));
        }
        if mode != Mode::Polling {
            // Every new connection of the session (the first, and each after
            // the database was lost) wakes the reader: notifications may have
            // been missed, and others may not have seen the session yet.
            let reader = Arc::downgrade(&notify);
            let on_connect = Arc::new(move || {
                if let Some(n) = reader.upgrade() {
                    n.notify_one();
                    wake_later(&n);
                }
            });
            let session = Session::open(self, &channel, on_connect).await?;
            tokio::spawn(listen_loop(self.clone(), session, notify.clone(), shutdown));
        }
        let poll = match mode {
            Mode::EventDriven => None,
            Mode::Polling | Mode::Hybrid => Some(poll_interval),
        };
        Ok(Wake::new(notify, poll))
    }

    /// Registers a task watcher's waiters for changes announced here.
    pub(crate) fn add_watcher(&self, waiters: &Arc<Mutex<WaiterMap>>) {
        if let Ok(mut all) = self.inner.watchers.lock() {
            // Only live watchers are kept: the list never outgrows them.
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(waiters));
        }
    }

    /// Announces everything a committed write changed.
    pub fn announce(&self, changed: &Changed) {
        for queue in &changed.queues {
            self.hint(queue);
        }
        for (task_id, state) in &changed.tasks {
            self.task_event(*task_id, *state);
        }
    }

    /// [`announce`](Wakeups::announce), with the NOTIFYs sent before it
    /// returns: for a short-lived process (a CLI command) that closes its
    /// pool right after a write.
    pub async fn announce_now(&self, changed: &Changed) {
        self.announce(changed);
        if changed.is_empty() || !self.others_listen().await {
            return;
        }
        let token = [self.token().to_string()];
        for queue in &changed.queues {
            self.notify(&notify_channel(queue), &token).await;
        }
        let events: Vec<String> = changed
            .tasks
            .iter()
            .map(|(task_id, state)| self.task_event_payload(*task_id, *state))
            .collect();
        if !events.is_empty() {
            self.notify(TASK_EVENTS, &events).await;
        }
    }

    /// A NOTIFY on `channel` of each of `payloads`, in one statement and
    /// one commit. One that failed because the database was lost (a dead
    /// pooled connection after a restart, say) is sent again once the
    /// database answers, if it does within [`NOTIFY_RETRY_WITHIN`]; a
    /// failure is logged at debug level (readers are woken when their
    /// sessions reconnect, and fall back to polling).
    async fn notify(&self, channel: &str, payloads: &[String]) {
        let mut retried = false;
        loop {
            let Err(e) = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .bind(channel)
                .bind(payloads)
                .execute(self.pool())
                .await
            else {
                return;
            };
            let outage = self.database().report(&e);
            if outage && !retried {
                retried = true;
                let back = tokio::time::timeout(NOTIFY_RETRY_WITHIN, self.database().wait_up());
                if back.await.is_ok() {
                    continue;
                }
            }
            tracing::debug!(%channel, error = %e, "NOTIFY failed; readers fall back to polling");
            return;
        }
    }

    fn task_event_payload(&self, task_id: Uuid, state: TaskState) -> String {
        serde_json::json!({
            "task_id": task_id,
            "state": state.as_str(),
            "origin": self.token(),
        })
        .to_string()
    }

    /// Wakes the readers of `queue`; call after the transaction that sent to
    /// it has committed. Never blocks: the NOTIFY goes out from a background
    /// task.
    pub fn hint(&self, queue: &str) {
        let channel = notify_channel(queue);
        // Readers sharing this value wake at once.
        if let Ok(mut readers) = self.inner.readers.lock() {
            if let Some(here) = readers.get_mut(&channel) {
                here.retain(|r| match r.upgrade() {
                    Some(n) => {
                        n.notify_one();
                        true
                    }
                    None => false,
                });
            }
        }
        // Marked dirty under the map lock: the sender decides to exit under
        // the same lock, so a hint is never left on a sender that has gone.
        let (state, spawn) = {
            let Ok(mut senders) = self.inner.senders.lock() else {
                return;
            };
            let (s, spawn) = match senders.get(&channel) {
                Some(s) => (s.clone(), false),
                None => {
                    let s = Arc::new(Coalesced {
                        dirty: AtomicBool::new(false),
                        ping: Notify::new(),
                    });
                    senders.insert(channel.clone(), s.clone());
                    (s, true)
                }
            };
            s.dirty.store(true, Ordering::SeqCst);
            (s, spawn)
        };
        state.ping.notify_one();
        if spawn {
            tokio::spawn(send_hints(self.clone(), channel, state));
        }
    }

    /// Announces a task's new state (after the commit that made it): to the
    /// task watchers sharing this value at once, and on [`TASK_EVENTS`] when
    /// another listening session exists (the payload names this value as its
    /// `origin`, so its own watchers skip it).
    pub fn task_event(&self, task_id: Uuid, state: TaskState) {
        if let Ok(mut all) = self.inner.watchers.lock() {
            all.retain(|w| match w.upgrade() {
                Some(waiters) => {
                    deliver(&waiters, task_id, state);
                    true
                }
                None => false,
            });
        }
        self.send_task_event(self.task_event_payload(task_id, state));
    }
}

/// Wakes a reader once more after [`SEEN_AFTER`]: by then other processes
/// have seen its newly marked session, and whatever they sent without a
/// NOTIFY before is read.
fn wake_later(notify: &Arc<Notify>) {
    let notify = Arc::downgrade(notify);
    tokio::spawn(async move {
        tokio::time::sleep(SEEN_AFTER).await;
        if let Some(n) = notify.upgrade() {
            n.notify_one();
        }
    });
}

/// Turns notifications into wake-ups of one reader (a new connection of the
/// session wakes it too: see [`Wakeups::listen`]).
async fn listen_loop(
    wakeups: Wakeups,
    mut session: Session,
    notify: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            got = session.next() => match got {
                // Our own hints already woke the readers sharing this value.
                Some(note) if note.payload() == wakeups.token() => {}
                Some(_) => notify.notify_one(),
                // The pool was closed: the process is shutting down.
                None => break,
            }
        }
    }
    session.close().await;
}

/// Sends one NOTIFY per burst of hints; exits after a quiet second (the next
/// hint starts it again), so an idle pool is not held open.
async fn send_hints(wakeups: Wakeups, channel: String, state: Arc<Coalesced>) {
    loop {
        if tokio::time::timeout(Duration::from_secs(1), state.ping.notified())
            .await
            .is_err()
        {
            let Ok(mut senders) = wakeups.inner.senders.lock() else {
                return;
            };
            if state.dirty.load(Ordering::SeqCst) {
                continue; // a hint raced the timeout: go round once more
            }
            senders.remove(&channel);
            return;
        }
        if !state.dirty.swap(false, Ordering::SeqCst) {
            continue;
        }
        if !wakeups.others_listen().await {
            continue;
        }
        wakeups
            .notify(&channel, &[wakeups.token().to_string()])
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listening session is marked from its start-up packet on: a
    /// connection the session makes again (as after a restart) is seen by
    /// other processes with no statement of its own.
    #[sqlx::test(migrations = false)]
    async fn a_listening_session_is_marked_on_every_connection(pool: PgPool) {
        let wakeups = Wakeups::new(&pool);
        let stop = CancellationToken::new();
        let _wake = wakeups
            .listen(
                "steps_t",
                Mode::EventDriven,
                Duration::from_secs(1),
                stop.clone(),
            )
            .await
            .unwrap();
        let sessions = || {
            sqlx::query_scalar::<_, i32>(
                "SELECT pid FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = $1",
            )
            .bind(wakeups.token())
            .fetch_all(&pool)
        };
        let first = sessions().await.unwrap();
        assert_eq!(first.len(), 1, "one marked session");
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(first[0])
            .execute(&pool)
            .await
            .unwrap();
        let mut again = Vec::new();
        for _ in 0..100 {
            again = sessions().await.unwrap();
            if again.len() == 1 && again != first {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            again.len() == 1 && again != first,
            "a new marked session replaced the lost one: {first:?} -> {again:?}"
        );
        stop.cancel();
    }

    /// A hint wakes a reader sharing the value at once, with no NOTIFY.
    #[sqlx::test(migrations = false)]
    async fn a_hint_wakes_a_reader_of_the_same_value_directly(pool: PgPool) {
        let wakeups = Wakeups::new(&pool);
        let stop = CancellationToken::new();
        let mut wake = wakeups
            .listen(
                "steps_t",
                Mode::Polling,
                Duration::from_secs(60),
                stop.clone(),
            )
            .await
            .unwrap();
        wakeups.announce(&Changed::queue("steps_t"));
        tokio::time::timeout(Duration::from_secs(1), wake.wait())
            .await
            .expect("the hint woke the reader");
        stop.cancel();
    }
}
