//! Whether the database answers, as one process sees it: [`Availability`].
//!
//! Whatever fails against the database reports the error
//! ([`Availability::report`]); an error that says the server could not be
//! reached (refused or lost connections, pool time-outs, a server shutting
//! down or starting up: [`Unavailable`]) starts one check with a fresh
//! connection. A dead pooled connection after a restart fails one statement
//! and nothing else: the check connects, and nothing is logged. A server that
//! does not answer is **down**: one warning, then one prober retries with a
//! capped exponential backoff ([`Backoff`]) until a connection succeeds, then
//! one line says it is back. Callers wait for that ([`Availability::wait_up`])
//! instead of retrying and logging on their own, so an outage costs two log
//! lines per process however long it lasts and however many loops notice it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::watch;

use crate::migrate::MigrateError;
use crate::queue::QueueError;
use crate::{StoreError, StoreTransitionError};

/// A capped exponential backoff: `initial`, doubled after each failed try,
/// never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 50 ms, doubling up to 1 s: a restarted server is seen within 1 s of
    /// accepting connections again, at the cost of one connection attempt a
    /// second during an outage.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// The wait after `current`.
    pub fn next(&self, current: Duration) -> Duration {
        (current * 2).min(self.max).max(self.initial)
    }
}

/// Whether the database answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbState {
    /// It answers, or nothing has said otherwise since it last did.
    Up,
    /// Something failed as if it were gone; a fresh connection is being tried.
    Checking,
    /// No connection could be made since `since`; the last attempt failed
    /// with `error`.
    Down { since: Instant, error: String },
}

/// Errors that may say the database could not be reached (rather than that
/// a statement was wrong).
pub trait Unavailable {
    /// True when the error says the server could not be reached: it refused
    /// or lost the connection, the pool timed out waiting for one, or the
    /// server is shutting down, starting up or out of connections.
    fn is_unavailable(&self) -> bool;
}

impl Unavailable for sqlx::Error {
    fn is_unavailable(&self) -> bool {
        match self {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(d) => d.code().is_some_and(|c| unavailable_sqlstate(&c)),
            _ => false,
        }
    }
}

/// SQLSTATEs of a server that cannot serve now: class 08 (connection
/// exception), 57P01-57P03 (shut down by an administrator, crashed, cannot
/// connect now: starting up or shutting down), 53300 (too many connections).
fn unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

impl Unavailable for QueueError {
    fn is_unavailable(&self) -> bool {
        match self {
            QueueError::Sql(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

impl Unavailable for StoreTransitionError {
    fn is_unavailable(&self) -> bool {
        match self {
            StoreTransitionError::Sql(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

impl Unavailable for StoreError {
    fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Sql(e) => e.is_unavailable(),
            StoreError::Queue(e) => e.is_unavailable(),
            StoreError::Transition(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

impl Unavailable for MigrateError {
    fn is_unavailable(&self) -> bool {
        match self {
            MigrateError::Pgmq(pgmq::PgmqError::DatabaseError(e))
            | MigrateError::Function { source: e, .. }
            | MigrateError::Schema(
                sqlx::migrate::MigrateError::Execute(e)
                | sqlx::migrate::MigrateError::ExecuteMigration(e, _),
            ) => e.is_unavailable(),
            MigrateError::Queue(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

/// One process's view of whether its database answers (see the module
/// doc). Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Availability {
    inner: Arc<Inner>,
}

struct Inner {
    /// `host:port/database`, for the log.
    target: String,
    options: PgConnectOptions,
    backoff: Backoff,
    /// Time limit of one connection attempt of the prober.
    attempt_timeout: Duration,
    state: watch::Sender<DbState>,
    /// Counts outages and recoveries (see [`Availability::changes`]).
    changes: AtomicU64,
    /// When the database last came back after being down.
    recovered_at: Mutex<Option<Instant>>,
}

impl Availability {
    /// The availability of `pool`'s database, checked with `backoff`.
    pub fn new(pool: &PgPool, backoff: Backoff) -> Availability {
        let timeout = pool.options().get_acquire_timeout();
        Availability::for_options((*pool.connect_options()).clone(), backoff, timeout)
    }

    /// The availability of the database `options` connect to; one attempt to
    /// connect is given up after `attempt_timeout`.
    pub fn for_options(
        options: PgConnectOptions,
        backoff: Backoff,
        attempt_timeout: Duration,
    ) -> Availability {
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        Availability {
            inner: Arc::new(Inner {
                target,
                options: options.log_statements(tracing::log::LevelFilter::Trace),
                backoff,
                attempt_timeout: attempt_timeout.max(Duration::from_millis(100)),
                state: watch::Sender::new(DbState::Up),
                changes: AtomicU64::new(0),
                recovered_at: Mutex::new(None),
            }),
        }
    }

    /// The backoff the prober uses.
    pub fn backoff(&self) -> Backoff {
        self.inner.backoff
    }

    /// What is known now.
    pub fn state(&self) -> DbState {
        self.inner.state.borrow().clone()
    }

    /// True unless the database is down or being checked.
    pub fn is_up(&self) -> bool {
        *self.inner.state.borrow() == DbState::Up
    }

    /// Counts the times the database was found down or back: a value that
    /// changed since it was last read means whatever was learnt about the
    /// database's sessions meanwhile may be stale.
    pub fn changes(&self) -> u64 {
        self.inner.changes.load(Ordering::SeqCst)
    }

    /// Whether the database came back after being down less than `within`
    /// ago.
    pub fn recovered_within(&self, within: Duration) -> bool {
        self.inner
            .recovered_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < within)
    }

    /// Records a failure. Returns true when `error` says the database could
    /// not be reached: then a check has started (if none runs), the outage is
    /// logged once if it is one, and the caller should [`wait_up`] before it
    /// retries, logging nothing itself. Returns false for any other error,
    /// which the caller handles as before. Call it within a Tokio runtime
    /// (the check runs as a task).
    ///
    /// [`wait_up`]: Availability::wait_up
    pub fn report(&self, error: &(impl Unavailable + std::fmt::Display)) -> bool {
        if !error.is_unavailable() {
            return false;
        }
        let started = self.inner.state.send_if_modified(|s| {
            if *s == DbState::Up {
                *s = DbState::Checking;
                true
            } else {
                false
            }
        });
        if started {
            tracing::debug!(database = %self.inner.target, %error, "a statement lost the database; checking it");
            tokio::spawn(probe(Arc::downgrade(&self.inner)));
        }
        true
    }

    /// Records that a new connection to the database just succeeded (a
    /// listener reconnecting, say): the database is up, whatever the prober
    /// last saw.
    pub fn answered(&self) {
        self.inner.mark_up();
    }

    /// Returns at once while the database is up, else once it is back.
    pub async fn wait_up(&self) {
        let mut rx = self.inner.state.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail here.
        let _ = rx.wait_for(|s| *s == DbState::Up).await;
    }

    /// Waits for the database to answer before the first use: one
    /// connection attempt now, then, if it could not be reached, the
    /// prober's backoff until it can. Errors that do not say the database
    /// is unreachable (a wrong password, a missing database) are returned.
    pub async fn wait_reachable(&self) -> Result<(), sqlx::Error> {
        match tokio::time::timeout(self.inner.attempt_timeout, self.inner.options.connect()).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                self.answered();
                Ok(())
            }
            Ok(Err(e)) if !e.is_unavailable() => Err(e),
            Ok(Err(e)) => {
                self.report(&e);
                self.wait_up().await;
                Ok(())
            }
            Err(_) => {
                self.report(&sqlx::Error::PoolTimedOut);
                self.wait_up().await;
                Ok(())
            }
        }
    }
}

impl Inner {
    fn mark_up(&self) {
        let mut was_down = None;
        self.state.send_if_modified(|s| match s {
            DbState::Up => false,
            DbState::Checking => {
                *s = DbState::Up;
                true
            }
            DbState::Down { since, .. } => {
                was_down = Some(*since);
                *s = DbState::Up;
                true
            }
        });
        if let Some(since) = was_down {
            self.changes.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut at) = self.recovered_at.lock() {
                *at = Some(Instant::now());
            }
            tracing::info!(
                database = %self.target,
                down_for = ?since.elapsed(),
                "database reachable again"
            );
        }
    }

    /// From `Checking`: down since `since`. False when it is up meanwhile.
    fn mark_down(&self, since: Instant, error: &str) -> bool {
        let marked = self.state.send_if_modified(|s| match s {
            DbState::Checking => {
                *s = DbState::Down {
                    since,
                    error: error.to_string(),
                };
                true
            }
            _ => false,
        });
        if marked {
            self.changes.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(
                database = %self.target,
                %error,
                retry_every_at_most = ?self.backoff.max,
                "database unreachable; waiting for it"
            );
        }
        marked
    }

    /// The latest error, while down (not logged: only changes of state are).
    fn still_down(&self, error: &str) {
        self.state.send_if_modified(|s| match s {
            DbState::Down { error: e, .. } if e != error => {
                *e = error.to_string();
                true
            }
            _ => false,
        });
    }
}

/// Tries fresh connections until one succeeds: at once, then after each
/// wait of the backoff. Ends when the database is up (here or because
/// somebody else saw it answer) or nobody holds the [`Availability`].
async fn probe(inner: Weak<Inner>) {
    let since = Instant::now();
    let mut wait = None;
    loop {
        let Some(me) = inner.upgrade() else { return };
        if *me.state.borrow() == DbState::Up {
            return;
        }
        if let Some(w) = wait {
            drop(me);
            tokio::time::sleep(w).await;
            let Some(again) = inner.upgrade() else { return };
            if *again.state.borrow() == DbState::Up {
                return;
            }
            drop(again);
        }
        let Some(me) = inner.upgrade() else { return };
        let attempt = tokio::time::timeout(me.attempt_timeout, me.options.connect()).await;
        let error = match attempt {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                me.mark_up();
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "no connection within {:?} (the server does not answer)",
                me.attempt_timeout
            ),
        };
        let down = matches!(*me.state.borrow(), DbState::Down { .. });
        if down {
            me.still_down(&error);
        } else if !me.mark_down(since, &error) {
            return; // up meanwhile
        }
        wait = Some(match wait {
            None => me.backoff.initial,
            Some(w) => me.backoff.next(w),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let mut w = b.initial;
        let mut seen = vec![w];
        for _ in 0..4 {
            w = b.next(w);
            seen.push(w);
        }
        let ms: Vec<u128> = seen.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn unreachable_errors_are_told_from_bad_statements() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(refused.is_unavailable());
        assert!(sqlx::Error::PoolTimedOut.is_unavailable());
        assert!(!sqlx::Error::RowNotFound.is_unavailable());
        assert!(!sqlx::Error::PoolClosed.is_unavailable());
        assert!(StoreError::Sql(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!StoreError::Corrupt("x".into()).is_unavailable());
        for code in ["08006", "57P01", "57P03", "53300"] {
            assert!(unavailable_sqlstate(code), "{code}");
        }
        for code in ["23505", "42P01", "28P01", "3D000"] {
            assert!(!unavailable_sqlstate(code), "{code}");
        }
    }

    /// Nothing listens on port 1: reported down once, then back when a
    /// connection is seen to succeed.
    #[tokio::test]
    async fn a_server_that_does_not_answer_is_down_until_one_answers() {
        let options = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(1)
            .username("postgres");
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
        };
        let a = Availability::for_options(options, backoff, Duration::from_millis(500));
        assert!(a.is_up());
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(a.report(&refused));
        assert!(!a.report(&sqlx::Error::RowNotFound));
        let down = async {
            loop {
                if matches!(a.state(), DbState::Down { .. }) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), down)
            .await
            .expect("found down");
        let changes = a.changes();
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.wait_up().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "waits while down");
        a.answered();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken when up")
            .unwrap();
        assert!(a.is_up());
        assert_eq!(a.changes(), changes + 1);
        assert!(a.recovered_within(Duration::from_secs(5)));
    }
}
