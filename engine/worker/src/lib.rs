//! tasker-worker: the generic worker host; serves the step queues of one or
//! more namespaces with the handlers of a [`handler::HandlerRegistry`] (Rust
//! functions, WASM components with the `wasm` feature, and the C ABI's push
//! and pull handlers registered by `tasker-abi`).
//!
//! Per pool (a step queue: each namespace's own, and the `pools` it serves
//! beyond them) a reader waits for a wake-up ([`tasker_notify::Wakeups`]: a
//! hint from this process, a NOTIFY from another, or the fallback poll), reads
//! and claims a batch no larger than the free concurrency — only steps whose
//! handler this worker has; others stay for a worker that has it — and runs each step
//! on its own tokio task: heartbeat (the PGMQ visibility timeout is the
//! lease), timeout, handler, report. See [`run_step`].
//!
//! Invariants: a handler's panic or error becomes a failed attempt, never a
//! crashed worker; a step's outcome is reported in one statement that sends
//! the result and deletes the step's message; a worker changes no task state
//! itself (the orchestrator does).
//!
//! The worker registers itself in the worker registry at start
//! (`presence.rs`), heartbeats there and deregisters at a clean stop.

mod breakers;
pub mod handler;
mod presence;
mod report;
mod run;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::handler::HandlerRegistry;
pub use run::run_step;
use tasker_notify::wake::{Mode, Wake};
use tasker_notify::Wakeups;
use tasker_store::db::HeldConnection;
use tasker_store::queue;

/// How a worker host behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub namespaces: Vec<String>,
    /// Further pools served, beyond the namespaces' own.
    pub pools: Vec<String>,
    /// The language its handlers run in, for the registry: `rust`, `c`,
    /// `python`, `ruby` (the bindings set theirs).
    pub runtime: String,
    /// That runtime's version.
    pub runtime_version: String,
    /// How often the worker's registry row is refreshed.
    pub registry_heartbeat: Duration,
    /// Takeovers from lost workers a step may have before it ends
    /// (`worker_lost`).
    pub max_recoveries: u32,
    /// The circuit breakers' policy (`[circuit_breakers]`).
    pub breakers: tasker_model::breaker::BreakerPolicy,
    /// Steps running at once, over all namespaces.
    pub concurrency: usize,
    /// Most messages read per queue read.
    pub batch_size: usize,
    /// The lease: how long a read step stays invisible to other workers.
    pub lease_seconds: u32,
    /// How often a running step's lease is extended.
    pub heartbeat_interval: Duration,
    /// Fallback poll interval (polling and hybrid modes).
    pub poll_interval: Duration,
    pub mode: Mode,
    /// How long shutdown waits for running steps before releasing them.
    pub shutdown_grace: Duration,
    /// Identifies this worker in audit rows and results.
    pub worker_id: String,
    /// Outcomes waiting to be reported (`channels.worker_results`).
    pub results_buffer: usize,
    /// Fill level (percent) at which a channel warns (`channels.saturation_warn_percent`).
    pub saturation_warn_percent: u8,
    /// Apply successes in the report's own commit (`worker.apply_successes`).
    pub apply_successes: bool,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            namespaces: vec![],
            pools: vec![],
            runtime: "rust".into(),
            runtime_version: presence::RUSTC_VERSION.into(),
            registry_heartbeat: Duration::from_secs(5),
            max_recoveries: 10,
            breakers: Default::default(),
            concurrency: 16,
            batch_size: 16,
            lease_seconds: 30,
            heartbeat_interval: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            mode: Mode::Hybrid,
            shutdown_grace: Duration::from_secs(30),
            worker_id: format!("worker-{}", uuid::Uuid::now_v7()),
            results_buffer: 500,
            apply_successes: true,
            saturation_warn_percent: 80,
        }
    }
}

impl WorkerSettings {
    /// Every pool the worker reads: its namespaces, then its further pools,
    /// without repeats.
    pub fn served_pools(&self) -> Vec<String> {
        let mut pools: Vec<String> = Vec::new();
        for p in self.namespaces.iter().chain(&self.pools) {
            if !pools.contains(p) {
                pools.push(p.clone());
            }
        }
        pools
    }

    /// The settings `config` describes (`[worker]`, `[queues]`, `[channels]`),
    /// serving `namespaces`, or `worker.namespaces` when that is empty.
    pub fn from_config(config: &tasker_config::TaskerConfig, namespaces: Vec<String>) -> Self {
        let w = &config.worker;
        WorkerSettings {
            namespaces: if namespaces.is_empty() {
                w.namespaces.clone()
            } else {
                namespaces
            },
            pools: w.pools.clone(),
            registry_heartbeat: Duration::from_secs(u64::from(w.registry_heartbeat_seconds)),
            max_recoveries: w.max_recoveries,
            breakers: tasker_model::breaker::BreakerPolicy {
                enabled: config.circuit_breakers.enabled,
                failure_threshold: config.circuit_breakers.failure_threshold,
                reset_timeout: Duration::from_millis(config.circuit_breakers.reset_timeout_ms),
            },
            concurrency: w.concurrency as usize,
            batch_size: w.batch_size as usize,
            lease_seconds: config.queues.visibility_timeout_seconds,
            heartbeat_interval: Duration::from_secs(u64::from(w.heartbeat_interval_seconds)),
            poll_interval: Duration::from_millis(config.queues.poll_interval_ms),
            mode: w.mode,
            shutdown_grace: Duration::from_secs(u64::from(w.shutdown_grace_seconds)),
            results_buffer: config.channels.worker_results,
            saturation_warn_percent: config.channels.saturation_warn_percent,
            apply_successes: w.apply_successes,
            ..WorkerSettings::default()
        }
    }
}

/// What stopped a worker host.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the worker serves no namespaces or pools")]
    NoNamespaces,
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Runs the worker host until `shutdown` fires, then gives running steps
/// `shutdown_grace` to finish; those still running are told to stop and their
/// messages released (visible again at once) for another worker.
///
/// `wakeups` is this process's [`Wakeups`] on `pool`'s database: the readers
/// wait on it and the reports announce through it.
pub async fn run(
    pool: PgPool,
    wakeups: Wakeups,
    registry: Arc<HandlerRegistry>,
    settings: WorkerSettings,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    if settings.served_pools().is_empty() {
        return Err(WorkerError::NoNamespaces);
    }
    let settings = Arc::new(settings);
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    // Outcomes go to one reporter; a full channel makes finished jobs wait.
    let (reports, report_inbox) = tasker_model::channel::bounded(
        "worker.results",
        settings.results_buffer,
        settings.saturation_warn_percent,
    );
    let reporter = tokio::spawn(report::report_outcomes(
        pool.clone(),
        wakeups.clone(),
        report_inbox,
        settings.clone(),
    ));
    let steps = TaskTracker::new();
    let steps_cancel = CancellationToken::new();
    let counts = Arc::new(presence::Counts::default());
    let breakers = Arc::new(breakers::Breakers::new(
        settings.breakers,
        &settings.runtime,
    ));
    let mut readers = JoinSet::new();
    for pool_name in &settings.served_pools() {
        let queue_name = queue::step_queue(pool_name)?;
        // A worker may start before any template of its pool is
        // registered: make sure its queue exists rather than fail every read.
        queue::ensure(&mut *pool.acquire().await?, &queue_name).await?;
        let wake = wakeups
            .listen(
                &queue_name,
                settings.mode,
                settings.poll_interval,
                shutdown.clone(),
            )
            .await?;
        let reader = Reader {
            pool: pool.clone(),
            wakeups: wakeups.clone(),
            registry: registry.clone(),
            settings: settings.clone(),
            permits: permits.clone(),
            steps: steps.clone(),
            steps_cancel: steps_cancel.clone(),
            queue: queue_name,
            reports: reports.clone(),
            counts: counts.clone(),
            breakers: breakers.clone(),
        };
        readers.spawn(reader.run(wake, shutdown.clone()));
    }
    let presence_done = CancellationToken::new();
    let presence = tokio::spawn(presence::keep(
        pool.clone(),
        registry.clone(),
        settings.clone(),
        permits.clone(),
        counts.clone(),
        presence_done.clone(),
    ));
    tracing::info!(worker = %settings.worker_id, pools = ?settings.served_pools(), "worker started");
    while let Some(joined) = readers.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "a queue reader stopped abnormally");
        }
    }
    steps.close();
    if tokio::time::timeout(settings.shutdown_grace, steps.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace ran out; releasing the steps still running");
        steps_cancel.cancel();
        steps.wait().await;
    }
    // Every job has handed over its outcome; let the reporter finish them.
    drop(reports);
    let _ = reporter.await;
    presence_done.cancel();
    let _ = presence.await;
    tracing::info!(worker = %settings.worker_id, "worker stopped");
    Ok(())
}

/// Reads one pool's queue and starts its steps.
struct Reader {
    pool: PgPool,
    wakeups: Wakeups,
    registry: Arc<HandlerRegistry>,
    settings: Arc<WorkerSettings>,
    permits: Arc<Semaphore>,
    steps: TaskTracker,
    steps_cancel: CancellationToken,
    queue: String,
    reports: tasker_model::channel::Sender<report::Report>,
    counts: Arc<presence::Counts>,
    breakers: Arc<breakers::Breakers>,
}

impl Reader {
    async fn run(self, mut wake: Wake, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut conn = HeldConnection::new(self.pool.clone());
        // When each message a rate limit deferred is visible again: the
        // reader reads at each of these times, whatever the wake-ups
        // (docs/flow-control.md). Every one is kept, not only the first: a
        // read at the first may defer nothing, and nothing else would wake
        // the reader for the later ones in event-driven mode.
        let mut deferred_at: std::collections::BTreeSet<tokio::time::Instant> =
            std::collections::BTreeSet::new();
        loop {
            // Wait for at least one free slot before reading.
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = self.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            // Open breakers: the database (wait it out) and handler backends
            // (leave their steps to other workers).
            let allowed = if self.breakers.database.allow() {
                Some(self.breakers.allowed(&self.registry))
            } else {
                None
            };
            let allowed = match allowed {
                Some(a) if !a.handlers.is_empty() || a.components => a,
                _ => {
                    drop(first);
                    let wait = Duration::from_millis(100).max(
                        self.breakers
                            .database
                            .retry_in()
                            .min(self.settings.poll_interval.max(Duration::from_secs(1))),
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            let free = 1 + self.permits.available_permits();
            // A half-open breaker's trial is one step.
            let qty = match allowed.trials.is_empty() {
                true => free.min(self.settings.batch_size).max(1) as i32,
                false => 1,
            };
            let serves = tasker_store::step::Serves {
                handlers: Some(&allowed.handlers),
                components: allowed.components,
            };
            let claimed = match async {
                tasker_store::step::claim_with_deferrals(
                    conn.get().await?,
                    &self.queue,
                    self.settings.lease_seconds as i32,
                    qty,
                    &self.settings.worker_id,
                    serves,
                )
                .await
            }
            .await
            {
                Ok(c) => {
                    self.breakers.database.record(true);
                    backoff = Duration::from_millis(100);
                    c
                }
                Err(e) => {
                    self.breakers.database.record(false);
                    for t in &allowed.trials {
                        t.release_trial();
                    }
                    conn.release();
                    drop(first);
                    if self.wakeups.database().report(&e) {
                        // The outage is logged once, by Availability.
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = self.wakeups.database().wait_up() => continue,
                        }
                    }
                    tracing::warn!(queue = %self.queue, error = %e, "reading the step queue failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let read = claimed.read();
            if !claimed.deferred.is_empty() {
                let now = tokio::time::Instant::now();
                deferred_at.extend(
                    claimed
                        .deferred
                        .iter()
                        .map(|d| now + Duration::from_secs_f64(d.seconds.clamp(0.0, 3600.0))),
                );
                record_deferred(&claimed.deferred);
            }
            let claimed = claimed.claimed;
            if !allowed.trials.is_empty() && claimed.is_empty() {
                for t in &allowed.trials {
                    t.release_trial();
                }
            }
            // Deferred messages count: they were read, more may be behind them.
            let full = read as i32 == qty;
            let mut first = Some(first);
            for c in claimed {
                let permit = match first.take() {
                    Some(p) => p,
                    None => match self.permits.clone().try_acquire_owned() {
                        Ok(p) => p,
                        Err(_) => match self.permits.clone().acquire_owned().await {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    },
                };
                let job = run::Job {
                    pool: self.pool.clone(),
                    wakeups: self.wakeups.clone(),
                    registry: self.registry.clone(),
                    settings: self.settings.clone(),
                    queue: self.queue.clone(),
                    cancel: self.steps_cancel.child_token(),
                    reports: self.reports.clone(),
                    counts: self.counts.clone(),
                    breakers: self.breakers.clone(),
                };
                self.steps.spawn(async move {
                    job.run(c).await;
                    drop(permit);
                });
            }
            drop(first);
            if full {
                continue; // more may be waiting: read again at once
            }
            let next_deferred = deferred_at.first().copied();
            let deferred = async {
                match next_deferred {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = conn.wait_idle(async {
                    tokio::select! {
                        _ = wake.wait() => {}
                        _ = deferred => {}
                    }
                }) => {}
            }
            // The times that have come: the next read covers their messages.
            deferred_at = deferred_at.split_off(&tokio::time::Instant::now());
        }
    }
}

/// Counts the messages of a claim that rate limits deferred, by limit.
fn record_deferred(deferred: &[tasker_store::step::Deferred]) {
    let mut by_limit: std::collections::BTreeMap<&str, u64> = Default::default();
    for d in deferred {
        *by_limit.entry(d.limit.as_str()).or_default() += 1;
    }
    for (limit, n) in by_limit {
        tasker_model::telemetry::record_rate_limit_deferred(limit, n);
    }
}
