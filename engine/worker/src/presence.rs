//! The worker's row in the worker registry (`tasker_store::worker`): written
//! at start, refreshed every `registry_heartbeat` with the steps in flight and
//! the attempts finished, stamped stopped at a clean stop. A database outage
//! only delays the next heartbeat; a row deleted meanwhile is written again.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::handler::HandlerRegistry;
use crate::WorkerSettings;
use tasker_store::worker::{Load, WorkerInfo};

/// The compiler that built this worker: a Rust worker's runtime version.
pub const RUSTC_VERSION: &str = env!("TASKER_RUSTC_VERSION");

/// Attempts this worker finished, by outcome.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    succeeded: AtomicI64,
    failed: AtomicI64,
}

impl Counts {
    pub(crate) fn record(&self, success: bool) {
        let counter = if success {
            &self.succeeded
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the worker says about itself.
pub(crate) fn info(settings: &WorkerSettings, registry: &HandlerRegistry) -> WorkerInfo {
    WorkerInfo {
        id: settings.worker_id.clone(),
        host: hostname(),
        pid: std::process::id() as i32,
        runtime: settings.runtime.clone(),
        runtime_version: settings.runtime_version.clone(),
        tasker_version: env!("CARGO_PKG_VERSION").to_string(),
        namespaces: settings.namespaces.clone(),
        pools: settings.served_pools(),
        handlers: registry.names(),
        runs_components: registry.has_sources(),
        concurrency: i32::try_from(settings.concurrency).unwrap_or(i32::MAX),
        heartbeat_seconds: settings.registry_heartbeat.as_secs().clamp(1, 3600) as i32,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Keeps the worker's registry row until `done` fires, then marks it stopped.
pub(crate) async fn keep(
    pool: PgPool,
    registry: Arc<HandlerRegistry>,
    settings: Arc<WorkerSettings>,
    permits: Arc<Semaphore>,
    counts: Arc<Counts>,
    done: CancellationToken,
) {
    let load = || Load {
        in_flight: settings
            .concurrency
            .max(1)
            .saturating_sub(permits.available_permits()) as i32,
        steps_succeeded: counts.succeeded.load(Ordering::Relaxed),
        steps_failed: counts.failed.load(Ordering::Relaxed),
    };
    let mut registered = false;
    let mut failing = false;
    loop {
        let result = if registered {
            tasker_store::worker::heartbeat(&pool, &settings.worker_id, load()).await
        } else {
            tasker_store::worker::register(&pool, &info(&settings, &registry))
                .await
                .map(|()| true)
        };
        match result {
            Ok(present) => {
                if failing {
                    tracing::info!(worker = %settings.worker_id, "worker registry reachable again");
                    failing = false;
                }
                registered = present;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(worker = %settings.worker_id, error = %e, "worker registry heartbeat failed; retrying");
                    failing = true;
                }
            }
        }
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tokio::time::sleep(settings.registry_heartbeat) => {}
        }
    }
    if let Err(e) = tasker_store::worker::deregister(&pool, &settings.worker_id, load()).await {
        tracing::warn!(worker = %settings.worker_id, error = %e, "could not mark the worker stopped in the registry");
    }
}
