//! Vacuuming the tables every step churns, and analyzing the tables that
//! grew, when autovacuum has not.
//!
//! Each step deletes two queue messages and leaves four or five dead versions
//! of its row; readers walk past dead versions until a vacuum removes them,
//! and the planner's statistics lag the tables until an analyze. Autovacuum
//! does both, if it runs: it can be off (some CI and test servers) or far
//! behind its default thresholds on queue tables. Any orchestrator may do it;
//! one at a time does (an advisory lock), and only tables whose dead rows (or,
//! for an analyze alone, rows changed since the last analyze) pass a threshold
//! and that were not vacuumed (analyzed) within the interval.
//!
//! A new database needs the analyze most: plans made while a table was empty
//! read all of it once it has grown (a prepared claim kept a sequential scan of
//! `tasker.steps` while it grew to 25,000 rows: docs/performance.md).

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Executor, PgPool, Postgres};

use super::StoreError;

/// Advisory lock key held while vacuuming ("tasker:vacuum").
const VACUUM_LOCK: i64 = 0x7461_736b_7661_6375;

/// Dead rows a table may hold before a vacuum, beyond a fifth of its live rows
/// (autovacuum's own default scale).
const DEAD_ROWS_ALLOWED: i64 = 1_000;

/// Rows changed since a table's last analyze before it is analyzed again,
/// beyond a tenth of its live rows (autovacuum's own default scale).
const CHANGED_ROWS_ALLOWED: i64 = 1_000;

/// Vacuums (and analyzes) tasker's tables and the PGMQ queue tables that hold
/// more than `DEAD_ROWS_ALLOWED` + 20% of their live rows in dead rows and
/// were not vacuumed within `interval`; then analyzes the others in which
/// more than `CHANGED_ROWS_ALLOWED` + 10% of their live rows changed since
/// their last analyze, if that was not within `interval`. Returns the tables
/// vacuumed or analyzed: none when another orchestrator is vacuuming. Tables
/// locked by someone else (a running autovacuum, say) are skipped.
pub async fn vacuum_churned_tables(
    pool: &PgPool,
    interval: Duration,
) -> Result<Vec<String>, StoreError> {
    let mut conn = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(VACUUM_LOCK)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(Vec::new());
    }
    let vacuumed = vacuum_tables(&mut conn, interval).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(VACUUM_LOCK)
        .execute(&mut *conn)
        .await?;
    vacuumed
}

async fn vacuum_tables(
    conn: &mut PoolConnection<Postgres>,
    interval: Duration,
) -> Result<Vec<String>, StoreError> {
    // Names come from the catalog and are quoted by format('%I'); VACUUM and
    // ANALYZE take no parameters (and VACUUM cannot run in a transaction), so
    // each is sent as text. A table to vacuum is analyzed by its vacuum.
    let due: Vec<(String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', schemaname, relname),
                CASE WHEN vacuum THEN 'VACUUM (ANALYZE, SKIP_LOCKED)' ELSE 'ANALYZE (SKIP_LOCKED)' END
           FROM (SELECT schemaname, relname, n_dead_tup, n_mod_since_analyze,
                        n_dead_tup > $1 + n_live_tup / 5
                        AND coalesce(greatest(last_vacuum, last_autovacuum), '-infinity')
                            < now() - make_interval(secs => $3) AS vacuum,
                        n_mod_since_analyze > $2 + n_live_tup / 10
                        AND coalesce(greatest(last_analyze, last_autoanalyze), '-infinity')
                            < now() - make_interval(secs => $3) AS analyze_only
                   FROM pg_stat_user_tables
                  WHERE schemaname = 'tasker' OR (schemaname = 'pgmq' AND relname LIKE 'q\\_%')) t
          WHERE vacuum OR analyze_only
          ORDER BY vacuum DESC, n_dead_tup DESC, n_mod_since_analyze DESC",
    )
    .bind(DEAD_ROWS_ALLOWED)
    .bind(CHANGED_ROWS_ALLOWED)
    .bind(interval.as_secs_f64())
    .fetch_all(conn.as_mut())
    .await?;
    for (table, command) in &due {
        let started = std::time::Instant::now();
        conn.execute(format!("{command} {table}").as_str()).await?;
        tracing::debug!(%table, command, ms = started.elapsed().as_millis() as u64, "maintained");
    }
    Ok(due.into_iter().map(|(table, _)| table).collect())
}
