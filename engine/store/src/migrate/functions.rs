//! The function files, `migrations/functions/<name>.sql`: embedded at build
//! time, applied with `CREATE OR REPLACE` when their text changed, recorded in
//! `_tasker_functions`.

use sqlx::PgConnection;

use super::MigrateError;

/// One file of `migrations/functions/`, embedded at build time by `build.rs`.
#[derive(Debug, Clone, Copy)]
pub struct FunctionFile {
    /// The file name without `.sql`: the name of the function it defines.
    pub name: &'static str,
    /// sha256 of `sql`, hex.
    pub sha256: &'static str,
    pub sql: &'static str,
}

/// Every function file, sorted by name.
pub static FUNCTIONS: &[FunctionFile] = include!(concat!(env!("OUT_DIR"), "/functions.rs"));

/// Applies the function files whose text changed since they were last applied
/// (or whose function is missing; every file when `all`), in name order, in
/// one transaction. Returns how many were applied.
pub(super) async fn apply_functions(
    conn: &mut PgConnection,
    all: bool,
) -> Result<usize, MigrateError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_tasker_functions') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS _tasker_functions (
                 name            text PRIMARY KEY,
                 sha256          text NOT NULL,
                 tasker_version  text NOT NULL,
                 applied_at      timestamptz NOT NULL DEFAULT now())",
        )
        .execute(&mut *conn)
        .await?;
    }
    let versions: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT tasker_version FROM _tasker_functions")
            .fetch_all(&mut *conn)
            .await?;
    if let Some(theirs) = versions.into_iter().find(|v| is_newer(v)) {
        let database: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut *conn)
            .await?;
        return Err(MigrateError::NewerFunctions {
            database,
            theirs,
            ours: TASKER_VERSION,
        });
    }
    let names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    let hashes: Vec<&str> = FUNCTIONS.iter().map(|f| f.sha256).collect();
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT f.name FROM unnest($1::text[], $2::text[]) AS f(name, sha256)
           LEFT JOIN _tasker_functions a ON a.name = f.name
          WHERE $3 OR a.sha256 IS DISTINCT FROM f.sha256
             OR NOT EXISTS (SELECT 1 FROM pg_proc p
                             WHERE p.pronamespace = 'tasker'::regnamespace AND p.proname = f.name)
          ORDER BY f.name",
    )
    .bind(&names)
    .bind(&hashes)
    .bind(all)
    .fetch_all(&mut *conn)
    .await?;
    let forgotten: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM _tasker_functions WHERE name <> ALL ($1::text[]))",
    )
    .bind(&names)
    .fetch_one(&mut *conn)
    .await?;
    if stale.is_empty() && !forgotten {
        return Ok(0);
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for file in FUNCTIONS
        .iter()
        .filter(|f| stale.iter().any(|s| s == f.name))
    {
        sqlx::raw_sql(file.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| function_error(file.name, e))?;
        // A change of argument types creates an overload instead of replacing.
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_proc
              WHERE pronamespace = 'tasker'::regnamespace AND proname = $1",
        )
        .bind(file.name)
        .fetch_one(&mut *tx)
        .await?;
        if count != 1 {
            return Err(MigrateError::FunctionSignature {
                file: file.name,
                message: format!(
                    "the schema now has {count} functions named tasker.{} (it must define exactly one, \
                     named as the file; an argument type changed?)",
                    file.name
                ),
            });
        }
        sqlx::query(
            "INSERT INTO _tasker_functions (name, sha256, tasker_version) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE
                SET sha256 = excluded.sha256, tasker_version = excluded.tasker_version,
                    applied_at = now()",
        )
        .bind(file.name)
        .bind(file.sha256)
        .bind(TASKER_VERSION)
        .execute(&mut *tx)
        .await?;
    }
    // A function whose file was deleted is dropped by a migration, not here.
    sqlx::query("DELETE FROM _tasker_functions WHERE name <> ALL ($1::text[])")
        .bind(&names)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(stale.len())
}

/// The version recorded with the function files this build applies.
pub(super) const TASKER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether `version` (recorded in `_tasker_functions`) is newer than this build.
pub(super) fn is_newer(version: &str) -> bool {
    match (
        semver::Version::parse(version),
        semver::Version::parse(TASKER_VERSION),
    ) {
        (Ok(theirs), Ok(ours)) => theirs > ours,
        _ => false,
    }
}

fn function_error(file: &'static str, e: sqlx::Error) -> MigrateError {
    match &e {
        // invalid_function_definition: "cannot change return type of existing
        // function", "cannot change name of input parameter", ...
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42P13") => {
            MigrateError::FunctionSignature {
                file,
                message: db.message().to_owned(),
            }
        }
        _ => MigrateError::Function { file, source: e },
    }
}
