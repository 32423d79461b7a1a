//! `tasker server` and `tasker worker`: long-running processes.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tasker_config::TaskerConfig;
use tasker_notify::Wakeups;
use tasker_orchestrator::{self as orchestration, OrchestratorSettings};
use tasker_store::db::{Database, DbSettings};
use tasker_store::template::TemplateCache;
use tasker_worker::handler::{examples, HandlerRegistry};
use tasker_worker::{self as worker, WorkerSettings};
use tokio_util::sync::CancellationToken;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkerArgs {
    #[command(subcommand)]
    pub cmd: Option<WorkerCmd>,
    /// Namespaces to serve (default: worker.namespaces from config).
    #[arg(long = "namespace", short = 'n')]
    namespaces: Vec<String>,
    /// Further pools to serve, beyond the namespaces' (default: worker.pools).
    #[arg(long = "pool", short = 'p')]
    pools: Vec<String>,
    /// Steps run at once (default: worker.concurrency).
    #[arg(long)]
    concurrency: Option<usize>,
}

/// `tasker worker <command>`: the worker registry.
#[derive(clap::Subcommand)]
pub enum WorkerCmd {
    /// Every live worker host (any runtime): pools, handlers, load, heartbeat.
    List {
        /// Also workers that stopped or went missing (kept for a day).
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

/// Fires on Ctrl-C or SIGTERM.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

/// The orchestrator and the admin API in one process. The API serves at
/// once: while the database cannot be reached (at start, or later) it
/// answers `/health/live`, says why it is not ready on `/health/ready`, and
/// 503 with `Retry-After` elsewhere; the orchestrator starts once the
/// database answers and is migrated.
pub async fn server(config: &TaskerConfig) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let db = open_lazy(config).await?;
    // The orchestrator and the API share one Wakeups: a task created over
    // the API wakes the orchestrator directly.
    let wakeups = Wakeups::with_availability(&db.pool, db.availability().clone());
    let (addr, api) =
        tasker_api::serve(db.pool.clone(), wakeups.clone(), config, shutdown.clone()).await?;
    tracing::info!(%addr, "admin API listening (docs at /docs, spec at /openapi.json)");
    let orchestrator = async {
        loop {
            ready(&db).await?;
            match orchestration::start(
                db.pool.clone(),
                wakeups.clone(),
                TemplateCache::default(),
                OrchestratorSettings::from_config(config),
                shutdown.clone(),
            )
            .await
            {
                Ok(started) => return anyhow::Ok(started),
                // Lost again between the check and the start: wait again.
                Err(e) if db.availability().report(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let started = tokio::select! {
        _ = shutdown.cancelled() => None,
        started = orchestrator => Some(started?),
    };
    shutdown.cancelled().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        if let Some((_orch, done)) = started {
            let _ = done.await;
        }
        let _ = api.await;
    })
    .await;
    db.close().await;
    Ok(())
}

pub async fn worker(args: WorkerArgs, config: &TaskerConfig) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let db = open_lazy(config).await?;
    tokio::select! {
        _ = shutdown.cancelled() => {
            db.close().await;
            return Ok(());
        }
        r = ready(&db) => r?,
    }
    let registry = Arc::new(HandlerRegistry::new());
    examples::register(&registry);
    if config.wasm.enabled {
        tasker_worker::handler::wasm::install(&registry, db.pool.clone(), &config.wasm).await?;
    }
    let mut settings = WorkerSettings::from_config(config, args.namespaces);
    if !args.pools.is_empty() {
        for p in &args.pools {
            tasker_store::queue::step_queue(p).map_err(|e| anyhow::anyhow!("--pool {p}: {e}"))?;
        }
        settings.pools = args.pools;
    }
    if let Some(c) = args.concurrency {
        settings.concurrency = c;
    }
    let wakeups = Wakeups::with_availability(&db.pool, db.availability().clone());
    loop {
        match worker::run(
            db.pool.clone(),
            wakeups.clone(),
            registry.clone(),
            settings.clone(),
            shutdown.clone(),
        )
        .await
        {
            Ok(()) => break,
            // The database was lost while the worker started: wait for it,
            // then start again.
            Err(e) if worker_start_lost_the_database(&e, &db) => {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = ready(&db) => r?,
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    db.close().await;
    Ok(())
}

/// The configured database, not connected yet when it has a URL: see
/// [`Database::open_lazy`].
async fn open_lazy(config: &TaskerConfig) -> anyhow::Result<Database> {
    Ok(Database::open_lazy(&DbSettings::from_config(config)).await?)
}

/// Waits until the database answers, then migrates it (waiting again if it
/// is lost meanwhile). An outage is logged once when it starts and once
/// when it ends (`tasker_store::db::Availability`), not at each attempt.
async fn ready(db: &Database) -> anyhow::Result<()> {
    loop {
        db.wait_reachable().await?;
        match tasker_store::migrate::migrate(&db.pool).await {
            Ok(_) => {
                tracing::info!(url = %db.display_url, "connected");
                return Ok(());
            }
            Err(e) if db.availability().report(&e) => continue,
            Err(e) => return Err(anyhow::Error::new(e).context("migrating the database")),
        }
    }
}

/// Whether `worker::run` failed to start because the database was lost.
fn worker_start_lost_the_database(e: &worker::WorkerError, db: &Database) -> bool {
    match e {
        worker::WorkerError::Queue(e) => db.availability().report(e),
        worker::WorkerError::Sql(e) => db.availability().report(e),
        _ => false,
    }
}
