//! One warm connection for a hot loop.

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

/// A hot loop idle this long gives its [`HeldConnection`] back to the pool.
pub const IDLE_RELEASE: Duration = Duration::from_millis(20);

/// A pooled connection a hot loop keeps between its statements.
///
/// The pool hands out the connection idle the longest, so consecutive
/// statements of one loop would each wake a different backend, whose caches
/// have gone cold meanwhile; one loop on one backend keeps its plans and
/// catalog entries warm. The loop gives the connection back after a short
/// idle while, at once when the pool has no other idle connection
/// ([`HeldConnection::keep_while_idle`]), and after an error, so neither a
/// small pool nor a closing one is kept waiting and a broken connection is
/// never reused.
pub struct HeldConnection {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl HeldConnection {
    pub fn new(pool: PgPool) -> HeldConnection {
        HeldConnection { pool, conn: None }
    }

    /// The held connection, acquired from the pool first if there is none.
    pub async fn get(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        let conn = match self.conn.take() {
            Some(c) => c,
            None => self.pool.acquire().await?,
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// Gives the connection back to the pool.
    pub fn release(&mut self) {
        self.conn = None;
    }

    /// Called when the loop goes idle: keeps the connection only while the
    /// pool has another idle one for everybody else, and says whether it is
    /// still held.
    pub fn keep_while_idle(&mut self) -> bool {
        if self.conn.is_some() && self.pool.num_idle() == 0 {
            self.conn = None;
        }
        self.conn.is_some()
    }

    /// Waits for `woken` (the loop's next work) while idle: the connection
    /// is kept for [`IDLE_RELEASE`] at most (see [`Self::keep_while_idle`]),
    /// then given back, and the wait goes on.
    pub async fn wait_idle<F: std::future::Future>(&mut self, woken: F) -> F::Output {
        let mut woken = std::pin::pin!(woken);
        if self.keep_while_idle() {
            tokio::select! {
                out = &mut woken => return out,
                _ = tokio::time::sleep(IDLE_RELEASE) => self.release(),
            }
        }
        woken.await
    }
}
