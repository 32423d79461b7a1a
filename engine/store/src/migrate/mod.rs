//! Bringing a database up to the current schema: PGMQ's SQL, then ours.
//!
//! Under one PostgreSQL advisory lock, so idempotent and safe to run from
//! several processes at once:
//!
//! 1. PGMQ's SQL (the pgmq crate's embedded scripts);
//! 2. a database migrated by the pre-release history is adopted or refused
//!    ([`OLD_HISTORY`]);
//! 3. the sqlx migrations in `migrations/` ([`MIGRATOR`]): the baseline and
//!    later append-only schema changes;
//! 4. the functions, `migrations/functions/<name>.sql` ([`FUNCTIONS`]), each
//!    the current definition of one function (`CREATE OR REPLACE`). A file is
//!    applied when its text changed since it was last applied here (its sha256
//!    is recorded in `_tasker_functions`, next to sqlx's `_sqlx_migrations`),
//!    when its function is missing, or — all of them — when a migration ran in
//!    this call; so a second run changes nothing. A tasker older than the one
//!    that applied them refuses to replace them ([`MigrateError::NewerFunctions`],
//!    as sqlx refuses a database with migrations it does not know);
//! 5. the legal transitions of `tasker_model::state`, and the results queue.
//!
//! `migrations/README.md` has the rules for changing either kind of file.

use sqlx::{PgConnection, PgPool};

mod functions;
mod history;

use functions::{apply_functions, is_newer};
pub use functions::{FunctionFile, FUNCTIONS};
use history::adopt_pre_release_history;
pub use history::{BASELINE_VERSION, OLD_HISTORY};

/// Our migrations (baseline + later schema changes), embedded at build time.
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
    #[error(
        "database {database} was migrated by tasker's pre-release migration history \
         (versions 20261126000001–20261127000007), which was squashed into a baseline in 0.1.0; \
         it records {found}, not exactly that history's last state, so it cannot be upgraded in \
         place: export what you need and drop it, or create a new database, then run `tasker migrate`"
    )]
    PreReleaseHistory {
        database: String,
        /// The versions (and checksum mismatches) the database records.
        found: String,
    },
    #[error(
        "migrations/functions/{file}.sql: {message}. CREATE OR REPLACE cannot change a function's \
         argument types, argument names or return type: begin the file with \
         `DROP FUNCTION IF EXISTS tasker.{file}(<the old argument types>);` (see migrations/README.md)"
    )]
    FunctionSignature { file: &'static str, message: String },
    #[error("applying migrations/functions/{file}.sql failed: {source}")]
    Function {
        file: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "database {database} has functions applied by tasker {theirs}, newer than this tasker \
         ({ours}); run `tasker migrate` with tasker {theirs} or later"
    )]
    NewerFunctions {
        database: String,
        theirs: String,
        ours: &'static str,
    },
    #[error("creating the results queue failed: {0}")]
    Queue(#[from] crate::queue::QueueError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Installs PGMQ (embedded SQL, no extension needed), applies every pending
/// tasker migration, then the function files that changed. Returns the number
/// of tasker migrations applied now.
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
    let mut conn = pool.acquire().await?;
    adopt_pre_release_history(&mut conn).await?;
    let applied = applied_versions(&mut conn).await?;
    let pending = MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count();
    MIGRATOR.run(&mut *conn).await?;
    let functions = apply_functions(&mut conn, pending > 0).await?;
    if functions > 0 {
        tracing::info!(functions, "applied function files");
    }
    write_legal_transitions(&mut conn).await?;
    crate::queue::ensure(&mut conn, crate::queue::RESULTS_QUEUE).await?;
    Ok(pending)
}

/// Mirrors the state machines of `tasker_model::state` into the tables the
/// transition functions check, so the database refuses illegal transitions too.
async fn write_legal_transitions(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn sqlx_table_exists(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
}

/// The versions of the successfully applied tasker migrations.
async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    if !sqlx_table_exists(conn).await? {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await
}

/// True when nothing is pending for this build (for readiness checks): every
/// embedded migration is applied and every function file is applied as
/// embedded (or a newer tasker applied its own).
pub async fn is_current(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let applied = applied_versions(&mut conn).await?;
    if !MIGRATOR.iter().all(|m| applied.contains(&m.version)) {
        return Ok(false);
    }
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_tasker_functions') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(false);
    }
    let names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    let hashes: Vec<&str> = FUNCTIONS.iter().map(|f| f.sha256).collect();
    let differing: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT a.tasker_version FROM unnest($1::text[], $2::text[]) AS f(name, sha256)
           LEFT JOIN _tasker_functions a ON a.name = f.name
          WHERE a.sha256 IS DISTINCT FROM f.sha256",
    )
    .bind(&names)
    .bind(&hashes)
    .fetch_all(&mut *conn)
    .await?;
    Ok(differing.iter().all(|v| v.as_deref().is_some_and(is_newer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tasker functions in the database with their row versions: a run
    /// that rewrites none leaves these unchanged.
    async fn function_rows(pool: &PgPool) -> Vec<(String, String)> {
        sqlx::query_as(
            "SELECT proname::text, xmin::text FROM pg_proc
              WHERE pronamespace = 'tasker'::regnamespace ORDER BY proname",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    }

    #[sqlx::test(migrations = false)]
    async fn applies_to_empty_database_then_is_a_no_op(pool: PgPool) {
        let first = migrate(&pool).await.expect("first run");
        assert_eq!(first, MIGRATOR.iter().count());
        assert!(is_current(&pool).await.unwrap());
        let functions = function_rows(&pool).await;
        let second = migrate(&pool).await.expect("second run");
        assert_eq!(second, 0);
        assert_eq!(
            function_rows(&pool).await,
            functions,
            "a second run rewrote functions"
        );
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'tasker'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        // 17, pauses (priority and pauses), signals (durable waits), rate_limits,
        // rate_buckets, template_step_limits (rate limits), step_logs (handler logs).
        assert_eq!(tables, 23);
        let triggers: Vec<String> = sqlx::query_scalar(
            "SELECT tgname::text FROM pg_trigger
              WHERE tgrelid IN ('tasker.tasks'::regclass, 'tasker.steps'::regclass)
                AND NOT tgisinternal ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            triggers,
            [
                "steps_dlq",
                "steps_history_deleted",
                "tasks_history_deleted"
            ]
        );
    }

    /// Every function file defines one function, named as the file, and the
    /// database ends up with exactly those functions, each defined once.
    #[sqlx::test(migrations = false)]
    async fn the_functions_are_exactly_the_function_files(pool: PgPool) {
        migrate(&pool).await.unwrap();
        let in_db: Vec<String> = sqlx::query_scalar(
            "SELECT proname::text FROM pg_proc
              WHERE pronamespace = 'tasker'::regnamespace ORDER BY proname",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let files: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
        assert_eq!(in_db, files);
    }

    #[test]
    fn function_files_define_their_function_and_migrations_define_none() {
        assert!(!FUNCTIONS.is_empty());
        for f in FUNCTIONS {
            let sql = f.sql.to_ascii_lowercase();
            let defs = sql.matches("create or replace function ").count();
            assert_eq!(defs, 1, "{}.sql must define exactly one function", f.name);
            assert!(
                sql.contains(&format!("create or replace function tasker.{}(", f.name)),
                "{0}.sql must define tasker.{0}",
                f.name
            );
            assert!(
                !sql.contains("create function "),
                "{}.sql: use CREATE OR REPLACE",
                f.name
            );
        }
        for m in MIGRATOR.iter() {
            let sql = m.sql.to_ascii_lowercase();
            assert!(
                !sql.contains("create function ") && !sql.contains("create or replace function "),
                "migration {} defines a function: functions live in migrations/functions/",
                m.version
            );
        }
    }

    #[sqlx::test(migrations = false)]
    async fn a_changed_or_missing_function_is_applied_again(pool: PgPool) {
        migrate(&pool).await.unwrap();
        // As if an older build had applied another text, and someone dropped a function.
        sqlx::query("UPDATE _tasker_functions SET sha256 = 'old' WHERE name = 'decide_task_state'")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("DROP FUNCTION tasker.release_children(uuid)")
            .execute(&pool)
            .await
            .unwrap();
        assert!(!is_current(&pool).await.unwrap());
        let before = function_rows(&pool).await;
        assert_eq!(migrate(&pool).await.unwrap(), 0);
        let after = function_rows(&pool).await;
        let changed: Vec<&str> = after
            .iter()
            .filter(|row| !before.contains(row))
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(changed, ["decide_task_state", "release_children"]);
        assert!(is_current(&pool).await.unwrap());
    }

    #[sqlx::test(migrations = false)]
    async fn a_signature_change_without_a_drop_is_a_clear_error(pool: PgPool) {
        migrate(&pool).await.unwrap();
        // An old definition with another return type: the file's CREATE OR REPLACE fails.
        sqlx::raw_sql(
            "DROP FUNCTION tasker.decide_task_state(uuid);
             CREATE FUNCTION tasker.decide_task_state(p_task uuid) RETURNS integer
             LANGUAGE sql AS 'SELECT 1';
             UPDATE _tasker_functions SET sha256 = 'old' WHERE name = 'decide_task_state'",
        )
        .execute(&pool)
        .await
        .unwrap();
        let err = migrate(&pool).await.unwrap_err();
        assert!(
            matches!(
                err,
                MigrateError::FunctionSignature {
                    file: "decide_task_state",
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("DROP FUNCTION IF EXISTS tasker.decide_task_state("),
            "{text}"
        );
        // Nothing of the failed run was kept.
        let returns: String = sqlx::query_scalar(
            "SELECT pg_get_function_result('tasker.decide_task_state'::regproc)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(returns, "integer");
    }

    /// An older tasker does not replace what a newer one applied (as sqlx
    /// refuses a database with migrations it does not know).
    #[sqlx::test(migrations = false)]
    async fn functions_of_a_newer_tasker_are_not_replaced(pool: PgPool) {
        migrate(&pool).await.unwrap();
        sqlx::query(
            "UPDATE _tasker_functions SET sha256 = 'newer', tasker_version = '999.0.0'
              WHERE name = 'decide_task_state'",
        )
        .execute(&pool)
        .await
        .unwrap();
        assert!(
            is_current(&pool).await.unwrap(),
            "nothing is pending for this build"
        );
        let before = function_rows(&pool).await;
        let err = migrate(&pool).await.unwrap_err();
        assert!(
            matches!(err, MigrateError::NewerFunctions { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("tasker 999.0.0"), "{err}");
        assert_eq!(function_rows(&pool).await, before);
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
        let count = |table: String| format!("SELECT count(*) FROM {table}");
        let left: i64 = sqlx::query_scalar(&count(crate::queue::table("smoke").unwrap()))
            .fetch_one(&pool)
            .await
            .unwrap();
        let in_archive: i64 =
            sqlx::query_scalar(&count(crate::queue::archive_table("smoke").unwrap()))
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!((left, in_archive), (0, 1));
    }
}
