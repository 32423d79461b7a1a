//! The pre-release migration history (20261126000001..20261127000007) and the
//! baseline it was squashed into. When the history was squashed (2026-12-05)
//! a database migrated by the old files and one migrated by the baseline +
//! `migrations/functions/` gave identical `pg_dump --schema-only -n tasker`
//! output; the old files are in git (commit b83a1ca), not in the tree, so that
//! each function is defined in exactly one file. These tests build a database
//! as the old history left it (the baseline's schema, the old versions and
//! checksums in `_sqlx_migrations`, no `_tasker_functions`) and check that:
//!
//! * `migrate` adopts it (records the baseline in place of the old versions,
//!   applies the migrations after it and today's functions): its schema is then
//!   exactly a new database's, its data kept; a second run changes nothing;
//! * a database with only part of the old history, or other checksums, is
//!   refused with `MigrateError::PreReleaseHistory`.
//!
//! Needs `pg_dump` (on PATH, or `PG_DUMP`) no older than the server, and
//! `DATABASE_URL` (a role that may create databases).

use sqlx::{PgPool, Row};
use tasker_store::migrate::{migrate, MigrateError, BASELINE_VERSION, OLD_HISTORY};

/// A database as the pre-release `tasker migrate` left it: the baseline's
/// schema (identical, see the module doc), `_sqlx_migrations` listing the
/// seven old versions with their checksums, and no record of function files.
async fn migrate_with_old_history(pool: &PgPool) {
    // The baseline's schema alone: the migrations after it came later.
    let baseline = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(vec![tasker_store::migrate::MIGRATOR
            .iter()
            .next()
            .expect("the baseline migration")
            .clone()]),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    baseline.run(pool).await.expect("migrating to the baseline");
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(pool)
        .await
        .unwrap();
    for (version, checksum) in OLD_HISTORY {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES ($1, 'pre-release', true, decode($2, 'hex'), 0)",
        )
        .bind(version)
        .bind(checksum)
        .execute(pool)
        .await
        .unwrap();
    }
}

async fn database_name(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `DATABASE_URL` with its database replaced by `db`.
fn database_url(db: &str) -> String {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL must be set");
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base.to_owned(), format!("?{query}")),
        None => (url.clone(), String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => &base,
    };
    format!("{base}/{db}{query}")
}

/// `pg_dump --schema-only -n tasker` of `db`, without what differs between
/// two dumps of one schema: comments (they carry OIDs), session settings, the
/// random `\restrict` key of recent pg_dump releases, blank lines.
fn schema_dump(db: &str) -> String {
    let pg_dump = std::env::var("PG_DUMP").unwrap_or_else(|_| "pg_dump".into());
    let out = std::process::Command::new(&pg_dump)
        .args(["--schema-only", "--no-owner", "-n", "tasker", "--dbname"])
        .arg(database_url(db))
        .output()
        .unwrap_or_else(|e| panic!("running {pg_dump} (set PG_DUMP to its path): {e}"));
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("--")
                || l.starts_with("SET ")
                || l.starts_with("SELECT pg_catalog.set_config")
                || l.starts_with("\\restrict")
                || l.starts_with("\\unrestrict"))
        })
        .collect();
    assert!(
        kept.iter()
            .any(|l| l.starts_with("CREATE TABLE tasker.steps")),
        "the dump of {db} has no tasker schema"
    );
    kept.join("\n")
}

/// Equal dumps, or a panic that shows where they part.
fn assert_same_schema(left: &str, right: &str, what: &str) {
    if left == right {
        return;
    }
    let (l, r): (Vec<&str>, Vec<&str>) = (left.lines().collect(), right.lines().collect());
    let at = l.iter().zip(&r).take_while(|(a, b)| a == b).count();
    panic!(
        "{what}: schemas differ at line {at}:\n  left:  {:?}\n  right: {:?}",
        l.get(at),
        r.get(at)
    );
}

/// The tasker functions with their row versions: a run that rewrites none
/// leaves these unchanged.
async fn function_rows(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT proname::text, xmin::text FROM pg_proc
          WHERE pronamespace = 'tasker'::regnamespace ORDER BY proname",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn recorded_migrations(pool: &PgPool) -> Vec<(i64, String, bool, Vec<u8>)> {
    sqlx::query(
        "SELECT version, description, success, checksum FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// A second, freshly created database next to the test's, migrated by the
/// current `migrate`; the caller drops it with `drop_fresh`.
async fn fresh_database(pool: &PgPool) -> (String, PgPool) {
    // Named after the test database's OID: sqlx's test database names are
    // close to PostgreSQL's 63-byte limit.
    let oid: i64 = sqlx::query_scalar(
        "SELECT oid::bigint FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let name = format!("tasker_squashed_history_{oid}");
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(pool)
        .await
        .unwrap();
    let fresh = PgPool::connect(&database_url(&name)).await.unwrap();
    migrate(&fresh).await.expect("migrating a new database");
    (name, fresh)
}

async fn drop_fresh(pool: &PgPool, name: &str, fresh: PgPool) {
    fresh.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_database_of_the_old_history_is_adopted(pool: PgPool) {
    migrate_with_old_history(&pool).await;
    sqlx::query("INSERT INTO tasker.namespaces (name, queue_name) VALUES ('kept', 'steps_kept')")
        .execute(&pool)
        .await
        .unwrap();
    let old_db = database_name(&pool).await;
    // What a new database has, taken before any assertion can leave it behind.
    let (fresh_db, fresh) = fresh_database(&pool).await;
    let new_schema = schema_dump(&fresh_db);
    let new_recorded = recorded_migrations(&fresh).await;
    drop_fresh(&pool, &fresh_db, fresh).await;

    // Adopted: the baseline recorded in place of the old versions exactly as
    // a new database records it, only the migrations after it applied, the
    // schema then a new database's.
    assert!(!tasker_store::migrate::is_current(&pool).await.unwrap());
    let after_baseline = tasker_store::migrate::MIGRATOR.iter().count() - 1;
    assert_eq!(migrate(&pool).await.expect("adopting"), after_baseline);
    assert!(tasker_store::migrate::is_current(&pool).await.unwrap());
    let recorded = recorded_migrations(&pool).await;
    assert_eq!(recorded, new_recorded);
    assert_eq!(recorded[0].0, BASELINE_VERSION);
    assert_same_schema(&schema_dump(&old_db), &new_schema, "adopted vs new");
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasker.namespaces WHERE name = 'kept'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(kept, 1);

    // A second run changes nothing.
    let functions = function_rows(&pool).await;
    assert_eq!(migrate(&pool).await.unwrap(), 0);
    assert_eq!(function_rows(&pool).await, functions);
    assert_eq!(recorded_migrations(&pool).await, recorded);
}

async fn assert_refused(pool: &PgPool, mention: &str) {
    let before = recorded_migrations(pool).await;
    let err = migrate(pool).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, MigrateError::PreReleaseHistory { .. }),
        "{err:?}"
    );
    for needle in [
        database_name(pool).await.as_str(),
        "pre-release migration history",
        "20261126000001–20261127000007",
        "squashed into a baseline in 0.1.0",
        "drop it, or create a new database",
        mention,
    ] {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
    assert_eq!(
        recorded_migrations(pool).await,
        before,
        "a refused database was changed"
    );
}

#[sqlx::test(migrations = false)]
async fn part_of_the_old_history_is_refused(pool: PgPool) {
    migrate_with_old_history(&pool).await;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(OLD_HISTORY[6].0)
        .execute(&pool)
        .await
        .unwrap();
    assert_refused(&pool, "versions 20261126000001, ").await;
}

#[sqlx::test(migrations = false)]
async fn old_history_with_other_checksums_is_refused(pool: PgPool) {
    migrate_with_old_history(&pool).await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = $1")
        .bind(OLD_HISTORY[2].0)
        .execute(&pool)
        .await
        .unwrap();
    assert_refused(&pool, "20261126000003 (other checksum)").await;
}
