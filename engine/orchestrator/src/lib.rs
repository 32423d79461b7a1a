//! tasker-orchestrator: task creation, result processing, retries, recovery
//! and finalization. A command processor that only routes, and one actor per
//! concern, connected by bounded channels (`[channels]` in config).
//!
//! Invariants: every state change goes through the store in one transaction
//! with the messages it causes, and is announced (through
//! [`tasker_notify::Wakeups`]) only after that commit; any number of
//! orchestrators may run at once (finalization happens under the task's row
//! lock, exactly once).
//!
//! ```text
//!  results listener ─ResultsReady───▶ command processor ──▶ result processor ──▶ finalizer
//!  sweep timers ─EnqueueDue/Stale/Vacuum/Workers▶   │          ──▶ step enqueuer
//!  clients ────────CreateTask────────▶        └──────────▶ task requests
//!  schedule tick (its own loop) ──▶ store::schedule::fire_due
//!  retention sweep (its own loop) ──▶ store::retention::run
//! ```
//!
//! * **task requests** create tasks (one transaction each, see `store::task`);
//! * **result processor** takes batches from the results queue and processes
//!   them, reading and applying a batch in one statement and one commit
//!   (`store::take::take_batch`; up to four batches at once), and schedules
//!   a wake-up when a retry is due;
//! * **step enqueuer** enqueues due retries, wakes due waits (`store::wait`:
//!   a sleep over, a signal's time-out), re-evaluates stale tasks and
//!   starts the vacuum of churned tables (`store::vacuum`);
//! * **schedule tick** fires due schedules about once a second
//!   (`store::schedule::fire_due`: exactly once per tick across every
//!   orchestrator, by the fire row's primary key, with no leader);
//! * **finalizer** observes finished tasks (logs, latency). Finalizing itself
//!   happens inside the result's transaction under the task row lock, which is
//!   what makes it exactly-once across any number of orchestrators.
//!
//! When a channel is full its sender waits, except for hints: "results are
//! ready" and retry wake-ups are dropped when their channel is full (one is
//! already pending; the fallback poll and the periodic sweep cover the rest).
//! The PGMQ results queue is the durable buffer, so nothing is lost.

mod actors;
mod concurrency;
mod retention;
mod schedules;
mod waits;

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use tasker_config::{ChannelConfig, StaleTaskAction, TaskerConfig};
use tasker_model::channel;
use tasker_notify::wake::{Mode, Wake};
use tasker_notify::Wakeups;
use tasker_store::queue::{self, RESULTS_QUEUE};
use tasker_store::task::{Created, NewTask};
use tasker_store::template::TemplateCache;
use tasker_store::StoreError;

pub use retention::RetentionSweep;

/// How an orchestrator behaves.
#[derive(Debug, Clone)]
pub struct OrchestratorSettings {
    pub processor_id: String,
    pub mode: Mode,
    pub result_batch_size: u32,
    pub poll_interval: Duration,
    /// Lease on a result message while it is being processed.
    pub result_lease_seconds: u32,
    pub retry_sweep_interval: Duration,
    pub stale_after: Duration,
    pub stale_sweep_interval: Duration,
    pub stale_action: StaleTaskAction,
    /// How often to vacuum churned tables autovacuum left behind; `None`: never.
    pub vacuum_interval: Option<Duration>,
    /// An enqueued step no live worker could run for this long ends in error
    /// (`tasker_store::worker::fail_unserved`); `None`: never.
    pub unserved_step_timeout: Option<Duration>,
    /// How often due schedules are fired (`tasker_store::schedule::fire_due`);
    /// `None`: never by this orchestrator.
    pub schedule_tick_interval: Option<Duration>,
    /// The retention sweep of finished tasks (`[retention]`); `None`: off.
    pub retention: Option<RetentionSweep>,
    pub channels: ChannelConfig,
}

impl OrchestratorSettings {
    /// Settings from the loaded configuration.
    pub fn from_config(config: &TaskerConfig) -> OrchestratorSettings {
        let o = &config.orchestration;
        OrchestratorSettings {
            processor_id: format!("orchestrator-{}", uuid::Uuid::now_v7()),
            mode: o.mode,
            result_batch_size: o.result_batch_size,
            poll_interval: Duration::from_millis(o.fallback_poll_interval_ms),
            result_lease_seconds: config.queues.visibility_timeout_seconds,
            retry_sweep_interval: Duration::from_millis(o.retry_sweep_interval_ms),
            stale_after: Duration::from_secs(o.stale_task_after_seconds),
            stale_sweep_interval: Duration::from_secs(o.stale_sweep_interval_seconds),
            stale_action: o.stale_task_action,
            vacuum_interval: (o.vacuum_interval_seconds > 0)
                .then(|| Duration::from_secs(o.vacuum_interval_seconds)),
            unserved_step_timeout: (o.unserved_step_timeout_seconds > 0)
                .then(|| Duration::from_secs(o.unserved_step_timeout_seconds)),
            schedule_tick_interval: (o.schedule_tick_interval_ms > 0)
                .then(|| Duration::from_millis(o.schedule_tick_interval_ms)),
            retention: RetentionSweep::from_config(&config.retention),
            channels: config.channels.clone(),
        }
    }
}

/// What the command processor routes.
pub enum Command {
    /// The results queue may hold results (a wake-up or a poll tick).
    ResultsReady,
    /// Enqueue the retries that are due.
    EnqueueDueRetries,
    /// Re-evaluate tasks without progress for `stale_after`.
    SweepStale,
    /// Vacuum the queue and state tables autovacuum has left behind.
    Vacuum,
    /// End steps no live worker serves; forget long-gone workers.
    SweepWorkers,
    /// Create a task; the answer goes back on the oneshot.
    CreateTask(Box<NewTask>, oneshot::Sender<Result<Created, StoreError>>),
}

/// A running orchestrator: send it commands, stop it with the token.
#[derive(Clone)]
pub struct Orchestrator {
    commands: channel::Sender<Command>,
}

impl Orchestrator {
    /// Creates a task through the task-request actor.
    pub async fn create_task(&self, req: NewTask) -> Result<Created, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::CreateTask(Box::new(req), tx))
            .await
            .map_err(|_| StoreError::Unavailable("the orchestrator"))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the orchestrator"))?
    }
}

/// Starts an orchestrator's actors, its results listener and its sweeps; they
/// stop when `shutdown` fires. The returned join handle ends when all have.
///
/// `wakeups` is this process's [`Wakeups`] on `pool`'s database: the results
/// listener waits on it and every change the orchestrator commits is
/// announced through it.
pub async fn start(
    pool: PgPool,
    wakeups: Wakeups,
    templates: TemplateCache,
    settings: OrchestratorSettings,
    shutdown: CancellationToken,
) -> Result<(Orchestrator, tokio::task::JoinHandle<()>), queue::QueueError> {
    {
        let mut conn = pool.acquire().await.map_err(queue::QueueError::Sql)?;
        queue::ensure(&mut conn, RESULTS_QUEUE).await?;
    }
    let warn = settings.channels.saturation_warn_percent;
    let (cmd_tx, cmd_rx) = channel::bounded(
        "orchestration.commands",
        settings.channels.command_buffer,
        warn,
    );
    let wake = wakeups
        .listen(
            RESULTS_QUEUE,
            settings.mode,
            settings.poll_interval,
            shutdown.clone(),
        )
        .await
        .map_err(queue::QueueError::Sql)?;
    let schedule_loop = settings.schedule_tick_interval.map(|every| {
        schedules::run(
            pool.clone(),
            wakeups.clone(),
            templates.clone(),
            settings.processor_id.clone(),
            every,
            shutdown.clone(),
        )
    });
    let actors = actors::Actors::spawn(
        pool.clone(),
        wakeups.clone(),
        templates,
        &settings,
        cmd_tx.clone(),
        shutdown.clone(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(actors::route(cmd_rx, actors, shutdown.clone()));
    tasks.spawn(listen_for_results(wake, cmd_tx.clone(), shutdown.clone()));
    tasks.spawn(tick(
        cmd_tx.clone(),
        settings.retry_sweep_interval,
        shutdown.clone(),
        || Command::EnqueueDueRetries,
    ));
    tasks.spawn(tick(
        cmd_tx.clone(),
        settings.stale_sweep_interval,
        shutdown.clone(),
        || Command::SweepStale,
    ));
    if let Some(every) = settings.vacuum_interval {
        tasks.spawn(tick(cmd_tx.clone(), every, shutdown.clone(), || {
            Command::Vacuum
        }));
    }
    // A quarter of the unserved timeout (1 s to 30 s): a step ends at most
    // that long after its time is up.
    let workers_every = settings
        .unserved_step_timeout
        .map_or(Duration::from_secs(30), |t| t / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(30));
    tasks.spawn(tick(
        cmd_tx.clone(),
        workers_every,
        shutdown.clone(),
        || Command::SweepWorkers,
    ));
    if let Some(schedule_loop) = schedule_loop {
        tasks.spawn(schedule_loop);
    }
    if let Some(sweep) = settings.retention.clone() {
        tasks.spawn(retention::run(
            pool.clone(),
            wakeups.clone(),
            sweep,
            shutdown.clone(),
        ));
    }
    let handle = tokio::spawn(async move { while tasks.join_next().await.is_some() {} });
    tracing::info!(processor = %settings.processor_id, mode = ?settings.mode, "orchestrator started");
    Ok((Orchestrator { commands: cmd_tx }, handle))
}

/// The results listener: tells the result processor at every wake-up (a
/// NOTIFY, a local hint or the fallback poll) that results may be waiting.
async fn listen_for_results(
    mut wake: Wake,
    commands: channel::Sender<Command>,
    shutdown: CancellationToken,
) {
    loop {
        if commands.send(Command::ResultsReady).await.is_err() {
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.wait() => {}
        }
    }
}

async fn tick(
    commands: channel::Sender<Command>,
    every: Duration,
    shutdown: CancellationToken,
    make: fn() -> Command,
) {
    let mut t = tokio::time::interval(every.max(Duration::from_millis(10)));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = t.tick() => commands.try_send_or_drop(make()),
        }
    }
}
