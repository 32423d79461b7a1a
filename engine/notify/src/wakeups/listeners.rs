//! Whether anyone else listens: the check [`Wakeups`] makes before a NOTIFY
//! (see the parent module's docs), and the server restarts it watches for.

use std::time::Instant;

use super::*;

impl Wakeups {
    /// Whether a listening session other than this value's may exist on
    /// the database: false only when `pg_stat_activity` said so less than
    /// [`LISTENERS_SEEN_FOR`] ago, while the database is up and has been
    /// for [`UNSURE_AFTER_RECOVERY`], as far as this value can tell (an
    /// outage it saw, or a new server start time: a restart it did not see).
    /// Unsure means yes: a NOTIFY too many costs a statement, one too few a
    /// poll interval or, for event-driven readers, everything. A NOTIFY
    /// nobody else hears is pure cost: a statement and a commit on the
    /// database, and a wake-up of every listening session, all competing
    /// with the step path for the same cores (with orchestrator and worker
    /// in one process, 8% of the linear latency and 10% of the throughput on
    /// the 2-core VM).
    pub(crate) async fn others_listen(&self) -> bool {
        let db = self.database();
        if !db.is_up() || db.recovered_within(UNSURE_AFTER_RECOVERY) || self.restarted_lately() {
            return true;
        }
        let changes = db.changes();
        if let Ok(others) = self.inner.others.lock() {
            if let Some((at, yes, seen)) = *others {
                if at.elapsed() < LISTENERS_SEEN_FOR && seen == changes {
                    return yes;
                }
            }
        }
        let asked = sqlx::query_as::<_, (bool, f64)>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                             WHERE datname = current_database()
                               AND application_name LIKE $1 || '%'
                               AND application_name <> $2),
                    extract(epoch FROM pg_postmaster_start_time())::float8",
        )
        .bind(LISTENER_PREFIX)
        .bind(self.token())
        .fetch_one(self.pool())
        .await;
        let yes = match asked {
            Ok((yes, started)) => {
                let restarted = self.server_started(started);
                yes || restarted
            }
            Err(e) => {
                db.report(&e);
                if let Ok(mut others) = self.inner.others.lock() {
                    *others = None;
                }
                return true;
            }
        };
        if let Ok(mut others) = self.inner.others.lock() {
            *others = Some((Instant::now(), yes, changes));
        }
        yes
    }

    /// Records the server's start time; true when it changed (the server
    /// restarted since it was last seen).
    fn server_started(&self, started: f64) -> bool {
        let Ok(mut seen) = self.inner.server_start.lock() else {
            return true;
        };
        let restarted = seen.0.is_some_and(|before| before != started);
        seen.0 = Some(started);
        if restarted {
            seen.1 = Some(Instant::now());
        }
        restarted
    }

    /// Whether the server was seen to restart less than
    /// [`UNSURE_AFTER_RECOVERY`] ago.
    fn restarted_lately(&self) -> bool {
        self.inner
            .server_start
            .lock()
            .map(|seen| {
                seen.1
                    .is_some_and(|at| at.elapsed() < UNSURE_AFTER_RECOVERY)
            })
            .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::ConnectOptions;

    /// The value's own listeners do not count; another listening session
    /// does, once the answer kept for `LISTENERS_SEEN_FOR` has run out.
    #[sqlx::test(migrations = false)]
    async fn notify_is_skipped_only_while_no_other_session_listens(pool: PgPool) {
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
        assert!(!wakeups.others_listen().await, "only this value listens");

        let other = (*pool.connect_options())
            .clone()
            .application_name(&format!("{LISTENER_PREFIX}0-another-process"))
            .connect()
            .await
            .unwrap();
        assert!(
            !wakeups.others_listen().await,
            "the answer is kept for a while"
        );
        tokio::time::sleep(LISTENERS_SEEN_FOR + Duration::from_millis(50)).await;
        assert!(wakeups.others_listen().await, "another session listens");
        sqlx::Connection::close(other).await.unwrap();
        stop.cancel();
    }

    /// Unsure means yes: while the database is being checked after a lost
    /// connection, and for a while after the server was seen to restart.
    #[sqlx::test(migrations = false)]
    async fn notify_is_sent_whenever_it_is_unsure_whether_others_listen(pool: PgPool) {
        let wakeups = Wakeups::new(&pool);
        assert!(!wakeups.others_listen().await, "nobody listens");
        let lost = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(wakeups.database().report(&lost));
        assert!(
            wakeups.others_listen().await,
            "the database is being checked: unsure"
        );
        wakeups.database().wait_up().await;

        // The server's start time changed since it was last seen: a restart
        // this value did not notice otherwise.
        assert!(!wakeups.restarted_lately(), "no restart seen yet");
        assert!(wakeups.server_started(1.0), "a new start time is a restart");
        assert!(!wakeups.server_started(1.0), "the same one is not");
        assert!(wakeups.restarted_lately());
        assert!(wakeups.others_listen().await, "just restarted: unsure");
    }
}
