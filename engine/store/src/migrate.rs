//! Bringing a database up to the current schema: PGMQ's SQL, then ours.
//!
//! Idempotent and safe to run from several processes at once: the whole run
//! holds a PostgreSQL advisory lock.

use sqlx::PgPool;

/// Our migrations, embedded in the binary at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Advisory lock key serialising concurrent migration runs ("tasker" in ASCII).
const MIGRATION_LOCK: i64 = 0x7461_736b_6572;

/// What went wrong while migrating.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("installing PGMQ's SQL failed: {0}")]
    Pgmq(#[from] pgmq::PgmqError),
    #[error("applying tasker migrations failed: {0}")]
    Schema(#[from] sqlx::migrate::MigrateError),
    #[error("creating the results queue failed: {0}")]
    Queue(#[from] crate::queue::QueueError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Installs PGMQ (embedded SQL, no extension needed) and applies every pending
/// tasker migration. Returns the number of tasker migrations applied now.
pub async fn migrate(pool: &PgPool) -> Result<usize, MigrateError> {
    let mut lock = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *lock)
        .await?;
    let result = run(pool).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *lock)
        .await;
    result
}

async fn run(pool: &PgPool) -> Result<usize, MigrateError> {
    pgmq::install::install_sql_from_embedded(pool).await?;
    let before = applied_count(pool).await?;
    MIGRATOR.run(pool).await?;
    write_legal_transitions(pool).await?;
    let mut conn = pool.acquire().await?;
    crate::queue::ensure(&mut conn, crate::queue::RESULTS_QUEUE).await?;
    Ok(applied_count(pool).await? - before)
}

/// Mirrors the state machines of `state.rs` into the tables the audit rows
/// reference, so the database refuses illegal transitions too.
async fn write_legal_transitions(pool: &PgPool) -> Result<(), sqlx::Error> {
    use tasker_model::state::{StepState, TaskState};
    let (tf, tt): (Vec<&str>, Vec<&str>) = TaskState::LEGAL
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .unzip();
    let (sf, st): (Vec<&str>, Vec<&str>) = StepState::LEGAL
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .unzip();
    sqlx::query(
        "WITH t AS (INSERT INTO tasker.legal_task_transitions SELECT * FROM unnest($1::text[], $2::text[])
                    ON CONFLICT DO NOTHING)
         INSERT INTO tasker.legal_step_transitions SELECT * FROM unnest($3::text[], $4::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(&tf)
    .bind(&tt)
    .bind(&sf)
    .bind(&st)
    .execute(pool)
    .await?;
    Ok(())
}

async fn applied_count(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(0);
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await?;
    Ok(n as usize)
}

/// True when every embedded migration is applied (for readiness checks).
pub async fn is_current(pool: &PgPool) -> Result<bool, sqlx::Error> {
    Ok(applied_count(pool).await? >= MIGRATOR.iter().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrations = false)]
    async fn applies_to_empty_database_then_is_a_no_op(pool: PgPool) {
        let first = migrate(&pool).await.expect("first run");
        assert_eq!(first, MIGRATOR.iter().count());
        assert!(is_current(&pool).await.unwrap());
        let second = migrate(&pool).await.expect("second run");
        assert_eq!(second, 0);
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'tasker'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(tables, 12); // 11 + handler_components (migration 4)
    }

    #[sqlx::test(migrations = false)]
    async fn concurrent_runs_do_not_collide(pool: PgPool) {
        let (a, b) = tokio::join!(migrate(&pool), migrate(&pool));
        assert_eq!(a.unwrap() + b.unwrap(), MIGRATOR.iter().count());
    }

    #[sqlx::test(migrations = false)]
    async fn pgmq_queue_send_read_archive(pool: PgPool) {
        migrate(&pool).await.unwrap();
        sqlx::query("SELECT pgmq.create('smoke')")
            .execute(&pool)
            .await
            .unwrap();
        let id: i64 = sqlx::query_scalar("SELECT * FROM pgmq.send('smoke', '{\"n\": 1}'::jsonb)")
            .fetch_one(&pool)
            .await
            .unwrap();
        let (read_id, msg): (i64, serde_json::Value) =
            sqlx::query_as("SELECT msg_id, message FROM pgmq.read('smoke', 30, 1)")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!((read_id, msg), (id, serde_json::json!({"n": 1})));
        let archived: bool = sqlx::query_scalar("SELECT pgmq.archive('smoke', $1)")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(archived);
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pgmq.q_smoke")
            .fetch_one(&pool)
            .await
            .unwrap();
        let in_archive: i64 = sqlx::query_scalar("SELECT count(*) FROM pgmq.a_smoke")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((left, in_archive), (0, 1));
    }
}
