//! `tasker server` and `tasker worker`: long-running processes.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tasker_config::TaskerConfig;
use tasker_notify::Wakeups;
use tasker_orchestrator::{self as orchestration, OrchestratorSettings};
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

/// The orchestrator and the admin API in one process.
pub async fn server(config: &TaskerConfig) -> anyhow::Result<()> {
    let db = super::open_db(config).await?;
    let shutdown = shutdown_signal();
    // The orchestrator and the API share one Wakeups: a task created over
    // the API wakes the orchestrator directly.
    let wakeups = Wakeups::new(&db.pool);
    let (_orch, done) = orchestration::start(
        db.pool.clone(),
        wakeups.clone(),
        TemplateCache::default(),
        OrchestratorSettings::from_config(config),
        shutdown.clone(),
    )
    .await?;
    let (addr, api) = tasker_api::serve(db.pool.clone(), wakeups, config, shutdown.clone()).await?;
    tracing::info!(%addr, "admin API listening (docs at /docs, spec at /openapi.json)");
    shutdown.cancelled().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = done.await;
        let _ = api.await;
    })
    .await;
    db.close().await;
    Ok(())
}

pub async fn worker(args: WorkerArgs, config: &TaskerConfig) -> anyhow::Result<()> {
    let db = super::open_db(config).await?;
    let registry = Arc::new(HandlerRegistry::new());
    examples::register(&registry);
    if config.wasm.enabled {
        tasker_worker::handler::wasm::install(&registry, db.pool.clone(), &config.wasm).await?;
    }
    let mut settings = WorkerSettings::from_config(config, args.namespaces);
    if !args.pools.is_empty() {
        for p in &args.pools {
            tasker_store::queue::step_queue(p)
                .map_err(|e| anyhow::anyhow!("--pool {p}: {e}"))?;
        }
        settings.pools = args.pools;
    }
    if let Some(c) = args.concurrency {
        settings.concurrency = c;
    }
    let wakeups = Wakeups::new(&db.pool);
    worker::run(
        db.pool.clone(),
        wakeups,
        registry,
        settings,
        shutdown_signal(),
    )
    .await?;
    db.close().await;
    Ok(())
}
