//! Finding and connecting to the database.
//!
//! With a configured URL, tasker connects to it. Without one it uses "the
//! default database that just works": a PostgreSQL on 127.0.0.1:5432 (user
//! `postgres`), creating database `tasker` there if missing; when nothing
//! answers, a private cluster started under a data directory with the system's
//! PostgreSQL binaries, stopped again when the returned [`Database`] is dropped.
//!
//! A long-running process opens it with [`Database::open_waiting`]: a
//! configured server that does not answer yet is waited for, and the
//! [`Availability`] it returns keeps waiting through later outages (one log
//! line when the database goes, one when it is back).

mod availability;
mod cluster;
mod held;

pub use availability::{Availability, Backoff, DbState, Unavailable};
pub use cluster::{find_pg_bin_dir, PrivateCluster};
pub use held::{HeldConnection, IDLE_RELEASE};

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// What went wrong while finding or starting a database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database URL is not valid: {0}")]
    BadUrl(String),
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "no database configured and none found: nothing answers on 127.0.0.1:5432 and no \
         PostgreSQL server binaries were found (looked in {searched}). Install PostgreSQL \
         (Debian: apt-get install postgresql) or set DATABASE_URL / TASKER_DATABASE__URL"
    )]
    NoPostgres { searched: String },
    #[error("starting a private PostgreSQL cluster in {data_dir} failed: {step}: {detail}")]
    PrivateCluster {
        data_dir: String,
        step: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// How to reach the database: an explicit URL or the local default.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// Explicit URL; `None` means the local default database.
    pub url: Option<String>,
    /// Name of the database created on the local server when no URL is given.
    pub database_name: String,
    /// Where a private cluster keeps its files.
    pub data_dir: PathBuf,
    /// Port of the private cluster.
    pub private_port: u16,
    /// Port of the local server tried first (5432).
    pub local_port: u16,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    /// How often an unreachable database is tried again (see [`Availability`]).
    pub reconnect: Backoff,
}

impl Default for DbSettings {
    fn default() -> Self {
        DbSettings {
            url: None,
            database_name: "tasker".into(),
            data_dir: PathBuf::from(".tasker/pgdata"),
            private_port: 54329,
            local_port: 5432,
            max_connections: 16,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            reconnect: Backoff::default(),
        }
    }
}

impl DbSettings {
    /// The settings of `config`'s `[database]` section.
    pub fn from_config(config: &tasker_config::TaskerConfig) -> DbSettings {
        let d = &config.database;
        DbSettings {
            url: d.url.as_ref().map(|s| s.expose().to_string()),
            database_name: d.database_name.clone(),
            data_dir: d.resolved_data_dir(),
            private_port: d.private_cluster_port,
            local_port: 5432,
            max_connections: d.max_connections,
            min_connections: d.min_connections,
            acquire_timeout: Duration::from_millis(d.acquire_timeout_ms),
            reconnect: Backoff::default(),
        }
    }
}

/// A connected pool, plus the private cluster it runs on (if any).
pub struct Database {
    pub pool: PgPool,
    /// The URL in use, with any password removed (safe to log).
    pub display_url: String,
    cluster: Option<PrivateCluster>,
    availability: Availability,
}

impl Database {
    /// Connects as `settings` say, creating or starting the default database when
    /// no URL is configured. A configured server that does not answer is an
    /// error (after `acquire_timeout`): right for a command a person waits for.
    pub async fn open(settings: &DbSettings) -> Result<Database, DbError> {
        match &settings.url {
            Some(url) => {
                let opts =
                    PgConnectOptions::from_str(url).map_err(|e| DbError::BadUrl(e.to_string()))?;
                let (pool, availability) = pool(settings, opts).await?;
                Ok(Database::new(pool, availability, redact_url(url), None))
            }
            None => open_default(settings).await,
        }
    }

    /// [`Database::open`] for a long-running process: a configured server
    /// that does not answer (refused, shutting down, starting up) is waited
    /// for, trying again with `settings.reconnect`'s backoff, logging once
    /// when it is found unreachable and once when it answers. Errors that
    /// waiting cannot cure (a bad URL, a wrong password, a missing database)
    /// are returned. Without a URL it is [`Database::open`] (whose fallback
    /// starts a private cluster when nothing answers).
    pub async fn open_waiting(settings: &DbSettings) -> Result<Database, DbError> {
        let db = Database::open_lazy(settings).await?;
        db.wait_reachable().await?;
        Ok(db)
    }

    /// [`Database::open_waiting`] without the wait: with a URL, the pool
    /// connects when first used (see [`Database::wait_reachable`]), so a
    /// process can serve its health routes while the database is down.
    /// Without one it is [`Database::open`].
    pub async fn open_lazy(settings: &DbSettings) -> Result<Database, DbError> {
        let Some(url) = &settings.url else {
            return open_default(settings).await;
        };
        let opts = PgConnectOptions::from_str(url).map_err(|e| DbError::BadUrl(e.to_string()))?;
        let availability = availability(settings, &opts);
        let pool = pool_options(settings, &availability)
            .connect_lazy_with(opts.log_statements(tracing::log::LevelFilter::Trace));
        Ok(Database::new(pool, availability, redact_url(url), None))
    }

    /// Returns once the database answers: at once when a connection can be
    /// made, else after waiting for it (see [`Database::open_waiting`]).
    pub async fn wait_reachable(&self) -> Result<(), DbError> {
        self.availability
            .wait_reachable()
            .await
            .map_err(|source| DbError::Connect {
                target: target(&self.pool.connect_options()),
                source,
            })
    }

    fn new(
        pool: PgPool,
        availability: Availability,
        display_url: String,
        cluster: Option<PrivateCluster>,
    ) -> Database {
        Database {
            pool,
            display_url,
            cluster,
            availability,
        }
    }

    /// Whether the database answers, as this process sees it; pass it to
    /// whatever uses the pool (`tasker_notify::Wakeups::with_availability`).
    pub fn availability(&self) -> &Availability {
        &self.availability
    }

    /// True when this process started the cluster it uses.
    pub fn owns_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// Closes the pool and stops a private cluster this process started.
    pub async fn close(mut self) {
        self.pool.close().await;
        if let Some(mut cluster) = self.cluster.take() {
            cluster.stop();
        }
    }
}

/// `host:port/database` of `opts`, for messages.
fn target(opts: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("")
    )
}

/// A pooled connection idle longer than this is pinged before it is handed out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// A pool on `opts`, with one connection made, and its [`Availability`].
async fn pool(
    settings: &DbSettings,
    opts: PgConnectOptions,
) -> Result<(PgPool, Availability), DbError> {
    let target = target(&opts);
    let availability = availability(settings, &opts);
    let pool = pool_options(settings, &availability)
        .connect_with(opts.log_statements(tracing::log::LevelFilter::Trace))
        .await
        .map_err(|source| DbError::Connect { target, source })?;
    Ok((pool, availability))
}

fn availability(settings: &DbSettings, opts: &PgConnectOptions) -> Availability {
    Availability::for_options(opts.clone(), settings.reconnect, settings.acquire_timeout)
}

/// The pool's options; each new connection tells `availability` that the
/// database answers (the process's loops need not wait for its prober).
fn pool_options(settings: &DbSettings, availability: &Availability) -> PgPoolOptions {
    let availability = availability.clone();
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout)
        // sqlx pings every connection it hands out by default: one more round
        // trip (and two wake-ups) before every statement of the hot path. Only
        // a connection that sat idle for a while is checked; a busy one has
        // just proved itself, and a statement that still meets a dead one
        // fails like any other and is retried by its caller.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |_conn, _meta| {
            availability.answered();
            Box::pin(async { Ok(()) })
        })
}

async fn open_default(settings: &DbSettings) -> Result<Database, DbError> {
    let local = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(settings.local_port)
        .username("postgres")
        .database("postgres");
    if let Ok(opts) = ensure_database(local.clone(), &settings.database_name).await {
        let (pool, availability) = pool(settings, opts).await?;
        let display_url = format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            settings.local_port, settings.database_name
        );
        return Ok(Database::new(pool, availability, display_url, None));
    }
    tracing::info!(
        port = settings.local_port,
        "no local PostgreSQL answers; starting a private cluster"
    );
    let cluster = PrivateCluster::start(&settings.data_dir, settings.private_port)?;
    let admin = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(settings.private_port)
        .username("postgres")
        .database("postgres");
    let opts = ensure_database(admin, &settings.database_name)
        .await
        .map_err(|source| DbError::Connect {
            target: format!("private cluster on port {}", settings.private_port),
            source,
        })?;
    let (pool, availability) = pool(settings, opts).await?;
    let display_url = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        settings.private_port, settings.database_name
    );
    Ok(Database::new(
        pool,
        availability,
        display_url,
        Some(cluster),
    ))
}

/// Connects to the server's maintenance database and creates `name` if missing;
/// returns options for `name`.
async fn ensure_database(
    admin: PgConnectOptions,
    name: &str,
) -> Result<PgConnectOptions, sqlx::Error> {
    let mut conn = admin
        .clone()
        .log_statements(tracing::log::LevelFilter::Trace)
        .connect()
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // CREATE DATABASE takes no parameters; quote the identifier.
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(e) = sqlx::query(&sql).execute(&mut conn).await {
            // Another process may have created it at the same moment.
            let raced = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04" || c == "23505");
            if !raced {
                return Err(e);
            }
        }
        tracing::info!(database = name, "created database");
    }
    conn.close().await?;
    Ok(admin.database(name))
}

pub use tasker_config::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    async fn idle_connections_become(pool: &PgPool, n: usize) {
        // A dropped pool connection goes back to the pool on a spawned task.
        for _ in 0..200 {
            if pool.num_idle() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the pool has {} idle connections, not {n}", pool.num_idle());
    }

    #[sqlx::test(migrations = false)]
    async fn a_held_connection_is_kept_only_while_another_is_idle(pool: PgPool) {
        let mut held = HeldConnection::new(pool.clone());
        sqlx::query("SELECT 1")
            .execute(held.get().await.unwrap())
            .await
            .unwrap();
        drop(pool.acquire().await.unwrap());
        idle_connections_become(&pool, 1).await;
        assert!(held.keep_while_idle(), "another connection is idle");

        let busy = pool.acquire().await.unwrap();
        assert!(!held.keep_while_idle(), "nothing else is idle: given back");
        idle_connections_become(&pool, 1).await;
        drop(busy);
        idle_connections_become(&pool, 2).await;

        // Taken again on demand, and given back for good.
        held.get().await.unwrap();
        idle_connections_become(&pool, 1).await;
        held.release();
        idle_connections_become(&pool, 2).await;
    }

    /// A configured server that is down when a long-running process starts
    /// is waited for, past the pool's acquire time-out (after which
    /// [`Database::open`] gives up), and used once it answers; a missing
    /// database is an error at once.
    #[tokio::test]
    async fn open_waiting_waits_for_a_server_that_is_down() {
        if find_pg_bin_dir().is_err() {
            eprintln!("skipped: no PostgreSQL server binaries on this machine");
            return;
        }
        let dir = std::env::temp_dir().join(format!("tasker-pgwait-{}", uuid::Uuid::now_v7()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut cluster = PrivateCluster::start(&dir, port).expect("private cluster");
        cluster.stop();
        let settings = DbSettings {
            url: Some(cluster.url("postgres")),
            max_connections: 2,
            acquire_timeout: Duration::from_secs(1),
            reconnect: Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(200),
            },
            ..DbSettings::default()
        };
        let waiting = settings.clone();
        let opening = tokio::spawn(async move { Database::open_waiting(&waiting).await });
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert!(!opening.is_finished(), "gave up on a server that is down");
        cluster.start_again().expect("the cluster starts again");
        let up = std::time::Instant::now();
        let db = tokio::time::timeout(Duration::from_secs(5), opening)
            .await
            .expect("connected soon after the server came up")
            .unwrap()
            .expect("connected");
        eprintln!("connected {:?} after the server came up", up.elapsed());
        assert!(db.availability().is_up());
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(one, 1);
        db.close().await;

        let missing = DbSettings {
            url: Some(cluster.url("no_such_database")),
            ..settings
        };
        let refused =
            tokio::time::timeout(Duration::from_secs(5), Database::open_waiting(&missing))
                .await
                .expect("a missing database is not waited for");
        assert!(
            matches!(refused, Err(DbError::Connect { .. })),
            "{:?}",
            refused.err()
        );
        drop(cluster);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The whole fallback path, for real: nothing answers on the local port, so a
    /// private cluster is initialised in a temporary directory, started, used and
    /// stopped again.
    #[tokio::test]
    async fn starts_a_private_cluster_when_no_server_answers() {
        if find_pg_bin_dir().is_err() {
            eprintln!("skipped: no PostgreSQL server binaries on this machine");
            return;
        }
        let dir = std::env::temp_dir().join(format!("tasker-pgdata-{}", uuid::Uuid::now_v7()));
        let port = 20000 + (std::process::id() % 20000) as u16;
        let settings = DbSettings {
            url: None,
            database_name: "tasker_private".into(),
            data_dir: dir.clone(),
            private_port: port,
            local_port: 1, // nothing listens on port 1
            max_connections: 2,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            reconnect: Backoff::default(),
        };
        let db = Database::open(&settings).await.expect("private cluster");
        assert!(db.owns_cluster());
        assert!(db.display_url.contains(&format!(":{port}/tasker_private")));
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(one, 1);
        db.close().await;
        // Stopped: the port no longer answers.
        let again = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username("postgres")
            .connect()
            .await;
        assert!(again.is_err(), "the private cluster is still running");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
