//! Where a benchmark runs.
//!
//! - [`Target::Scratch`] (the default): a new database on the configured
//!   server (`[database] url`, else the local default server), named
//!   `tasker_bench_<pid>_<random>`, migrated, used, and dropped afterwards:
//!   after success, after an error, on Ctrl-C / SIGTERM and after a panic.
//!   The configured database itself is only connected to, to create and drop
//!   the scratch one: nothing in it is read or written.
//! - [`Target::Url`]: the database the user named, used in place (migrated).
//!   The benchmark refuses, naming it, unless it holds no tasks and nothing
//!   else the benchmark would write ([`Claims`]): no messages in its queues,
//!   no component of its names. Nothing there is ever truncated or purged,
//!   and what the benchmark wrote stays there.
//! - [`Target::Filled`]: the same, but finished tasks (complete, error,
//!   cancelled, resolved_manually) may already be there: to measure a
//!   database at scale (scripts/bench-flat-cost.sh). Unfinished tasks and
//!   queued messages are still refused.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use sqlx::PgPool;
use tasker_config::{redact_url, TaskerConfig};
use tasker_store::db::{Database, DbSettings};
use tokio_util::sync::CancellationToken;

/// Which database a benchmark runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Target {
    /// A scratch database of its own on the configured server, dropped afterwards.
    #[default]
    Scratch,
    /// This database (a URL), if it holds nothing the benchmark did not create.
    Url(String),
    /// This database (a URL), which may also hold finished tasks.
    Filled(String),
}

/// What a benchmark writes besides tasks: checked in a [`Target::Url`]
/// database before anything runs there.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// PGMQ queues it sends to or reads from: each must be missing or empty.
    pub queues: Vec<String>,
    /// Names of the WASM components it uploads: none may exist.
    pub components: Vec<String>,
}

/// The database handed to a benchmark.
pub struct BenchDb {
    pub pool: PgPool,
    /// Its name.
    pub name: String,
    /// Its URL, without a password.
    pub display_url: String,
    /// Its URL as configured (with a password, if any): for the processes a
    /// benchmark starts, never for printing.
    pub url: String,
    /// True for a scratch database (dropped after the run).
    pub scratch: bool,
    /// Cancelled on Ctrl-C / SIGTERM: whatever the benchmark started in the
    /// background (orchestrator, worker) should stop.
    pub interrupted: CancellationToken,
}

/// How long an interrupted benchmark's connections get to come back.
const SETTLE: Duration = Duration::from_secs(5);

/// Runs `bench` in the database `target` names (see the module docs), with
/// `config`'s `[database]` settings for the pool. Returns what `bench`
/// returned; a scratch database is gone when this returns (or panics).
pub async fn run_in<T, F, Fut>(
    config: &TaskerConfig,
    target: &Target,
    claims: &Claims,
    bench: F,
) -> anyhow::Result<T>
where
    F: FnOnce(BenchDb) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let interrupted = CancellationToken::new();
    let watcher = tokio::spawn({
        let token = interrupted.clone();
        async move {
            signal().await;
            token.cancel();
        }
    });
    let result = match target {
        Target::Scratch => run_scratch(config, interrupted, bench).await,
        Target::Url(url) => run_named(config, url, claims, false, interrupted, bench).await,
        Target::Filled(url) => run_named(config, url, claims, true, interrupted, bench).await,
    };
    watcher.abort();
    result
}

/// Ctrl-C, or SIGTERM on Unix.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn interrupted_error() -> anyhow::Error {
    anyhow::anyhow!("interrupted")
}

/// `phase`, unless interrupted first.
async fn unless_interrupted<T>(
    interrupted: &CancellationToken,
    phase: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        r = phase => r,
        _ = interrupted.cancelled() => Err(interrupted_error()),
    }
}

/// A scratch database's name: `tasker_bench_<pid>_<8 hex digits>`.
pub fn scratch_name() -> String {
    format!(
        "tasker_bench_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let mut u = url::Url::parse(url)
        .map_err(|e| anyhow::anyhow!("the database URL {} is not valid: {e}", redact_url(url)))?;
    u.set_path(&format!("/{database}"));
    Ok(u.to_string())
}

fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A small pool on the configured server: the configured database with a
/// URL, else the local default server's `postgres` database (starting the
/// private cluster if that is what the configuration leads to). Returns it
/// and a URL of that server with which to reach other databases.
async fn open_admin(config: &TaskerConfig) -> anyhow::Result<(Database, String)> {
    let mut settings = DbSettings::from_config(config);
    settings.max_connections = 1;
    settings.min_connections = 0;
    let configured = settings.url.clone();
    if configured.is_none() {
        // The maintenance database: it exists, and nothing is created.
        settings.database_name = "postgres".into();
    }
    let admin = Database::open(&settings)
        .await
        .context("connecting to the configured database server")?;
    // Without a URL the server is the local default one, reached without a
    // password: its display URL is the URL.
    let base = configured.unwrap_or_else(|| admin.display_url.clone());
    Ok((admin, base))
}

async fn run_scratch<T, F, Fut>(
    config: &TaskerConfig,
    interrupted: CancellationToken,
    bench: F,
) -> anyhow::Result<T>
where
    F: FnOnce(BenchDb) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let (admin, base) = unless_interrupted(&interrupted, open_admin(config)).await?;
    let name = scratch_name();
    let url = match with_database(&base, &name) {
        Ok(url) => url,
        Err(e) => {
            admin.close().await;
            return Err(e);
        }
    };
    let display_url = redact_url(&url);
    let opened = unless_interrupted(&interrupted, async {
        sqlx::query(&format!("CREATE DATABASE {}", quoted(&name)))
            .execute(&admin.pool)
            .await
            .with_context(|| {
                format!(
                    "creating the scratch database {name} on {} (the user needs the CREATEDB \
                     privilege; or name an empty database with --database-url)",
                    redact_url(&base)
                )
            })?;
        tracing::info!(database = %name, "created the scratch database");
        let mut settings = DbSettings::from_config(config);
        settings.url = Some(url.clone());
        let db = Database::open(&settings).await?;
        if let Err(e) = tasker_store::migrate::migrate(&db.pool).await {
            db.close().await;
            return Err(anyhow::Error::new(e).context(format!("migrating {display_url}")));
        }
        Ok(db)
    })
    .await;
    let outcome = match opened {
        Ok(db) => {
            let handed = BenchDb {
                pool: db.pool.clone(),
                name: name.clone(),
                display_url: display_url.clone(),
                url: url.clone(),
                scratch: true,
                interrupted: interrupted.clone(),
            };
            let outcome = guarded(&interrupted, bench(handed)).await;
            close(db, &interrupted).await;
            outcome
        }
        Err(e) => Ok(Err(e)),
    };
    // Gone whatever happened (a panic included); WITH (FORCE) ends sessions
    // an interrupted run left behind. IF EXISTS: creation may not have happened.
    let drop_sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&name));
    match sqlx::query(&drop_sql).execute(&admin.pool).await {
        Ok(_) => tracing::info!(database = %name, "dropped the scratch database"),
        Err(e) => eprintln!(
            "warning: could not drop the scratch database {name} on {}: {e}; drop it by hand",
            redact_url(&base)
        ),
    }
    admin.close().await;
    finish(outcome)
}

async fn run_named<T, F, Fut>(
    config: &TaskerConfig,
    url: &str,
    claims: &Claims,
    finished_ok: bool,
    interrupted: CancellationToken,
    bench: F,
) -> anyhow::Result<T>
where
    F: FnOnce(BenchDb) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut settings = DbSettings::from_config(config);
    settings.url = Some(url.to_string());
    let display_url = redact_url(url);
    let db = unless_interrupted(&interrupted, async {
        Database::open(&settings)
            .await
            .with_context(|| format!("connecting to {display_url}"))
    })
    .await?;
    let prepared = unless_interrupted(&interrupted, async {
        let name: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&db.pool)
            .await?;
        refuse_unless_unused(&db.pool, &name, &display_url, claims, finished_ok).await?;
        tasker_store::migrate::migrate(&db.pool)
            .await
            .with_context(|| format!("migrating {display_url}"))?;
        Ok(name)
    })
    .await;
    let name = match prepared {
        Ok(name) => name,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    let handed = BenchDb {
        pool: db.pool.clone(),
        name,
        display_url,
        url: url.to_string(),
        scratch: false,
        interrupted: interrupted.clone(),
    };
    let outcome = guarded(&interrupted, bench(handed)).await;
    close(db, &interrupted).await;
    finish(outcome)
}

type Caught<T> = Result<anyhow::Result<T>, Box<dyn std::any::Any + Send>>;

/// Runs the benchmark until it ends, panics or is interrupted.
async fn guarded<T>(
    interrupted: &CancellationToken,
    bench: impl Future<Output = anyhow::Result<T>>,
) -> Caught<T> {
    let caught = tokio::select! {
        r = AssertUnwindSafe(bench).catch_unwind() => r,
        _ = interrupted.cancelled() => Ok(Err(interrupted_error())),
    };
    if !matches!(caught, Ok(Ok(_))) {
        // Stop what the benchmark left running.
        interrupted.cancel();
    }
    caught
}

/// Closes the benchmark's pool: at once after a clean run, else after its
/// background tasks had a moment to give their connections back.
async fn close(db: Database, interrupted: &CancellationToken) {
    if interrupted.is_cancelled() {
        let deadline = tokio::time::Instant::now() + SETTLE;
        while db.pool.size() > db.pool.num_idle() as u32 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if tokio::time::timeout(SETTLE, db.close()).await.is_err() {
            tracing::warn!("the benchmark's connections did not close in time");
        }
    } else {
        db.close().await;
    }
}

fn finish<T>(outcome: Caught<T>) -> anyhow::Result<T> {
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn exists(pool: &PgPool, relation: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(relation)
        .fetch_one(pool)
        .await
}

/// Refuses a named database that holds tasks, messages in `claims`' queues
/// or components of `claims`' names: the benchmark did not create them.
/// With `finished_ok`, tasks in a terminal state are allowed (only unfinished
/// ones are refused). Reads only; runs before the database is migrated.
pub async fn refuse_unless_unused(
    pool: &PgPool,
    name: &str,
    display_url: &str,
    claims: &Claims,
    finished_ok: bool,
) -> anyhow::Result<()> {
    let refuse = |what: String| {
        anyhow::anyhow!(
            "refusing to run on database {name} ({display_url}): {what}, which this benchmark \
             did not create. A benchmark writes tasks, queue messages and components where it \
             runs, so --database-url must name a database without any (a new one, or one only \
             migrated); without --database-url it runs in a scratch database and drops it"
        )
    };
    if exists(pool, "tasker.tasks").await? {
        let tasks: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasker.tasks WHERE NOT $1
                 OR state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')",
        )
        .bind(finished_ok)
        .fetch_one(pool)
        .await?;
        if tasks > 0 {
            let kind = if finished_ok { "unfinished " } else { "" };
            return Err(refuse(format!("it holds {tasks} {kind}task(s)")));
        }
    }
    for queue in &claims.queues {
        let table = tasker_store::queue::table(queue)?;
        if exists(pool, &table).await? {
            let messages: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(pool)
                .await?;
            if messages > 0 {
                return Err(refuse(format!(
                    "its queue {queue} holds {messages} message(s)"
                )));
            }
        }
    }
    if !claims.components.is_empty() && exists(pool, "tasker.handler_components").await? {
        for component in &claims.components {
            let versions: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM tasker.handler_components WHERE name = $1",
            )
            .bind(component)
            .fetch_one(pool)
            .await?;
            if versions > 0 {
                return Err(refuse(format!(
                    "it holds {versions} version(s) of the component {component}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_identifiers_of_this_process() {
        let (a, b) = (scratch_name(), scratch_name());
        let prefix = format!("tasker_bench_{}_", std::process::id());
        assert!(a.starts_with(&prefix) && b.starts_with(&prefix));
        assert_ne!(a, b);
        assert!(a.len() <= 63, "PostgreSQL truncates longer names");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    }

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:pw@h:5433/app?sslmode=require", "x").unwrap(),
            "postgres://u:pw@h:5433/x?sslmode=require"
        );
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert!(with_database("not a url", "x").is_err());
    }
}
