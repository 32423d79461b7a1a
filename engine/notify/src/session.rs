//! A LISTEN session that survives the database: [`Session`].
//!
//! Each session has a pool of its own, of one connection, whose connect
//! options carry the [`Wakeups`]' token as `application_name`: every
//! connection of the session is marked from its start-up packet on, whoever
//! opens it (sqlx's `PgListener` reconnects by itself, inside `try_recv`,
//! without telling anybody), so other processes always see that somebody
//! listens. The pool's `after_connect` hook tells the owner of every new
//! connection (notifications may have been missed) and the [`Availability`]
//! (the database answers). A lost connection is reported to the
//! `Availability` at once (which checks the database and, if it is gone,
//! logs the outage once for the process); the session connects again once
//! the database answers. Other failures are retried with a capped
//! exponential backoff, logging once when the trouble starts and once when
//! it ends.
//!
//! [`Availability`]: tasker_store::db::Availability

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::CloseEvent;
use sqlx::postgres::{PgListener, PgNotification, PgPoolOptions};
use sqlx::PgPool;

use crate::Wakeups;

/// Called after each new connection of a session (the first included).
pub(crate) type OnConnect = Arc<dyn Fn() + Send + Sync>;

/// How long closing a session's pool may take at the end.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// One LISTEN session (see the module doc).
pub(crate) struct Session {
    wakeups: Wakeups,
    channel: String,
    /// The session's own pool (one connection).
    pool: PgPool,
    /// `None` until the first connection succeeds.
    listener: Option<PgListener>,
    /// Fires when the [`Wakeups`]' pool is closed: the process is stopping.
    closed: Pin<Box<CloseEvent>>,
    /// Since when the session fails for a reason other than an outage
    /// (logged once when it starts).
    trouble: Option<Instant>,
    /// The wait before the next retry.
    backoff: Duration,
    /// Told of each new connection (by the pool's `after_connect`, and
    /// after [`Session::next`] replaced a listener, whose pool may have
    /// handed it a connection that was not new).
    on_connect: OnConnect,
}

impl Session {
    /// A session listening on `channel`; `on_connect` runs after each new
    /// connection. When the database cannot be reached now, the session
    /// connects later, by itself (its first [`Session::next`] waits for the
    /// database); other errors are returned.
    pub(crate) async fn open(
        wakeups: &Wakeups,
        channel: &str,
        on_connect: OnConnect,
    ) -> Result<Session, sqlx::Error> {
        let main = wakeups.pool();
        let options = (*main.connect_options())
            .clone()
            .application_name(wakeups.token());
        let db = wakeups.database().clone();
        let hook = on_connect.clone();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            // The one connection is held for as long as the session lives.
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .acquire_timeout(main.options().get_acquire_timeout())
            .after_connect(move |_conn, _meta| {
                let db = db.clone();
                let on_connect = hook.clone();
                Box::pin(async move {
                    db.answered();
                    on_connect();
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        let mut session = Session {
            wakeups: wakeups.clone(),
            channel: channel.to_string(),
            closed: Box::pin(main.close_event()),
            pool,
            listener: None,
            trouble: None,
            backoff: wakeups.database().backoff().initial,
            on_connect,
        };
        match connect(&session.pool, channel).await {
            Ok(l) => session.listener = Some(l),
            Err(e) if wakeups.database().report(&e) => {
                tracing::debug!(channel, error = %e, "the database is unreachable; listening once it is back");
            }
            Err(e) => return Err(e),
        }
        Ok(session)
    }

    /// The next notification, reconnecting as needed; `None` once the
    /// [`Wakeups`]' pool is closed.
    pub(crate) async fn next(&mut self) -> Option<PgNotification> {
        loop {
            let got = match self.listener.as_mut() {
                None => {
                    let connected = tokio::select! {
                        _ = self.closed.as_mut() => return None,
                        c = connect(&self.pool, &self.channel) => c,
                    };
                    match connected {
                        Ok(l) => {
                            self.listener = Some(l);
                            self.recovered();
                            (self.on_connect)();
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                Some(l) => tokio::select! {
                    _ = self.closed.as_mut() => return None,
                    got = l.try_recv() => got,
                },
            };
            match got {
                Ok(Some(note)) => {
                    self.recovered();
                    return Some(note);
                }
                // Lost (not reconnected yet: `eager_reconnect(false)`). Said
                // at once, so an outage is known at once; the next
                // `try_recv` connects again (`after_connect` tells the
                // owner) once the database answers.
                Ok(None) => {
                    let lost = sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the listening session's connection was lost",
                    ));
                    let db = self.wakeups.database().clone();
                    if db.report(&lost) {
                        tokio::select! {
                            _ = self.closed.as_mut() => return None,
                            _ = db.wait_up() => {}
                        }
                    }
                }
                Err(sqlx::Error::PoolClosed) => return None,
                Err(e) => {
                    // Whatever failed, the next try starts on a new
                    // connection: an error sqlx does not take for a lost
                    // connection may leave it holding a dead one.
                    self.listener = None;
                    if !self.failed(&e).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Waits before the next try after `error`: for the database to be back
    /// after an outage, else the backoff. False when the process stops
    /// meanwhile.
    async fn failed(&mut self, error: &sqlx::Error) -> bool {
        let db = self.wakeups.database().clone();
        if db.report(error) {
            // An outage: the Availability logs it, once for the process.
            tracing::debug!(channel = %self.channel, %error, "listening session lost the database");
            tokio::select! {
                _ = self.closed.as_mut() => return false,
                _ = db.wait_up() => {}
            }
        } else if self.trouble.is_none() {
            self.trouble = Some(Instant::now());
            tracing::warn!(
                channel = %self.channel,
                %error,
                "listening for wake-ups failed; retrying with backoff (readers poll meanwhile if they may)"
            );
        }
        let wait = self.backoff;
        self.backoff = db.backoff().next(wait);
        tokio::select! {
            _ = self.closed.as_mut() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// The session works (again).
    fn recovered(&mut self) {
        self.backoff = self.wakeups.database().backoff().initial;
        if let Some(since) = self.trouble.take() {
            tracing::info!(channel = %self.channel, after = ?since.elapsed(), "listening for wake-ups again");
        }
    }

    /// Ends the session: its connection is closed.
    pub(crate) async fn close(self) {
        drop(self.listener);
        let _ = tokio::time::timeout(CLOSE_WITHIN, self.pool.close()).await;
    }
}

/// A listener on `channel` over `pool`.
async fn connect(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported by `try_recv` at once (`Ok(None)`), not
    // after a reconnection attempt as long as the pool's acquire time-out.
    listener.eager_reconnect(false);
    listener.listen(channel).await?;
    Ok(listener)
}
