//! The actors and the router. Each actor owns one bounded inbox and one concern.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::mpsc::Receiver;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Command, OrchestratorSettings};
use tasker_model::channel::{self, Sender};
use tasker_model::state::TaskState;
use tasker_notify::Wakeups;
use tasker_store::db::HeldConnection;
use tasker_store::queue::{self, RESULTS_QUEUE};
use tasker_store::result::Processed;
use tasker_store::take::Taken;
use tasker_store::template::TemplateCache;
use tasker_store::{self as store, StoreError};

/// Result batches processed at once, at most (per orchestrator). A batch is
/// read and applied in one statement and one commit (`store::take::take_batch`).
const RESULT_BATCHES_IN_FLIGHT: usize = 4;
/// Task creations run at once, at most (per orchestrator).
const REQUEST_PARALLELISM: usize = 8;

/// The actors' inboxes.
pub(super) struct Actors {
    task_requests: Sender<Command>,
    results: Sender<()>,
    enqueuer: Sender<Command>,
}

impl Actors {
    pub fn spawn(
        pool: PgPool,
        wakeups: Wakeups,
        templates: TemplateCache,
        settings: &OrchestratorSettings,
        commands: Sender<Command>,
        shutdown: CancellationToken,
    ) -> Actors {
        let c = &settings.channels;
        let warn = c.saturation_warn_percent;
        let (task_requests, req_rx) =
            channel::bounded("orchestration.task_requests", c.task_requests, warn);
        let (results, res_rx) =
            channel::bounded("orchestration.step_results", c.step_results, warn);
        let (enqueuer, enq_rx) =
            channel::bounded("orchestration.step_enqueue", c.step_enqueue, warn);
        let (finalizer, fin_rx) =
            channel::bounded("orchestration.finalization", c.finalization, warn);
        let settings = Arc::new(settings.clone());
        tokio::spawn(task_request_actor(
            pool.clone(),
            wakeups.clone(),
            templates,
            settings.clone(),
            req_rx,
        ));
        tokio::spawn(result_actor(
            pool.clone(),
            wakeups.clone(),
            settings.clone(),
            res_rx,
            commands,
            finalizer,
            shutdown.clone(),
        ));
        tokio::spawn(enqueuer_actor(
            pool.clone(),
            wakeups,
            settings,
            enq_rx,
            shutdown,
        ));
        tokio::spawn(store::analytics::observe_finished(pool, fin_rx));
        Actors {
            task_requests,
            results,
            enqueuer,
        }
    }
}

/// The command processor: routes each command to its actor, nothing more.
pub(super) async fn route(
    mut commands: Receiver<Command>,
    actors: Actors,
    shutdown: CancellationToken,
) {
    loop {
        let cmd = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = commands.recv() => match c { Some(c) => c, None => return },
        };
        let sent = match cmd {
            Command::ResultsReady => {
                actors.results.try_send_or_drop(());
                true
            }
            c @ Command::CreateTask(..) => actors.task_requests.send(c).await.is_ok(),
            c @ (Command::EnqueueDueRetries
            | Command::SweepStale
            | Command::Vacuum
            | Command::SweepWorkers) => {
                actors.enqueuer.try_send_or_drop(c);
                true
            }
        };
        if !sent {
            return;
        }
    }
}

async fn task_request_actor(
    pool: PgPool,
    wakeups: Wakeups,
    templates: TemplateCache,
    settings: Arc<OrchestratorSettings>,
    mut inbox: Receiver<Command>,
) {
    // Creations run REQUEST_PARALLELISM at a time; each is its own transaction.
    let permits = Arc::new(tokio::sync::Semaphore::new(REQUEST_PARALLELISM));
    while let Some(cmd) = inbox.recv().await {
        if let Command::CreateTask(req, reply) = cmd {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (pool, templates, settings) = (pool.clone(), templates.clone(), settings.clone());
            let wakeups = wakeups.clone();
            tokio::spawn(async move {
                let created = store::task::create(&pool, &templates, &req, &settings.processor_id)
                    .await
                    .map(|(created, changed)| {
                        wakeups.announce(&changed);
                        created
                    });
                let _ = reply.send(created);
                drop(permit);
            });
        }
    }
}

/// Turns "results are ready" into work for its batch loops: at most
/// RESULT_BATCHES_IN_FLIGHT batches are taken at once. A wake-up while every
/// loop is busy is kept (one pending permit), so none is lost and a burst of
/// them costs one extra read, not one each.
async fn result_actor(
    pool: PgPool,
    wakeups: Wakeups,
    settings: Arc<OrchestratorSettings>,
    mut inbox: Receiver<()>,
    commands: Sender<Command>,
    finalizer: Sender<(Uuid, TaskState)>,
    shutdown: CancellationToken,
) {
    let ready = Arc::new(Notify::new());
    let help = Arc::new(Notify::new());
    let leader_busy = Arc::new(AtomicBool::new(false));
    // The loops stop with the orchestrator or when this actor's inbox closes.
    let stop = shutdown.child_token();
    let _stop_loops = stop.clone().drop_guard();
    // One loop (the leader) answers the wake-ups that find it idle, so results
    // taken one batch at a time keep to one warm connection; the others help
    // when a wake-up finds the leader busy or a batch comes back full.
    for i in 0..RESULT_BATCHES_IN_FLIGHT {
        let batches = BatchLoop {
            pool: pool.clone(),
            wakeups: wakeups.clone(),
            settings: settings.clone(),
            wake: if i == 0 { ready.clone() } else { help.clone() },
            help: help.clone(),
            leader_busy: (i == 0).then(|| leader_busy.clone()),
            commands: commands.clone(),
            finalizer: finalizer.clone(),
        };
        tokio::spawn(batches.run(stop.clone()));
    }
    while inbox.recv().await.is_some() {
        if leader_busy.load(Ordering::SeqCst) {
            help.notify_one();
        } else {
            ready.notify_one();
        }
    }
}

/// One batch loop of the result actor: the leader (with `leader_busy`) or a
/// helper.
struct BatchLoop {
    pool: PgPool,
    wakeups: Wakeups,
    settings: Arc<OrchestratorSettings>,
    /// What wakes this loop: the actor's wake-ups (leader) or `help`.
    wake: Arc<Notify>,
    help: Arc<Notify>,
    /// The leader says here whether it is taking batches.
    leader_busy: Option<Arc<AtomicBool>>,
    commands: Sender<Command>,
    finalizer: Sender<(Uuid, TaskState)>,
}

impl BatchLoop {
    /// At a wake-up, takes batches until one comes back short of full; a full
    /// batch also wakes a helper. The leader keeps its connection while
    /// results keep coming (consecutive batches run on one warm backend: on
    /// the 2-core VM the linear task p50 fell 12-20%) and gives it back after
    /// `db::IDLE_RELEASE` without; a helper gives it back at once.
    async fn run(self, stop: CancellationToken) {
        let (pool, settings) = (&self.pool, &self.settings);
        let qty = settings.result_batch_size.max(1) as i32;
        let mut conn = HeldConnection::new(pool.clone());
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = conn.wait_idle(self.wake.notified()) => {}
            }
            if let Some(b) = &self.leader_busy {
                b.store(true, Ordering::SeqCst);
            }
            loop {
                let taken_at = std::time::SystemTime::now();
                let taken = match async {
                    let c = conn.get().await?;
                    store::take::take_batch_on(
                        c,
                        settings.result_lease_seconds as i32,
                        qty,
                        &settings.processor_id,
                    )
                    .await
                }
                .await
                {
                    Ok((taken, changed)) => {
                        self.wakeups.announce(&changed);
                        taken
                    }
                    Err(e) => {
                        conn.release();
                        // Left in the queue: taken again once the database
                        // is back, or at the next wake-up or poll.
                        if self.wakeups.database().report(&e) {
                            tokio::select! {
                                _ = stop.cancelled() => return,
                                _ = self.wakeups.database().wait_up() => continue,
                            }
                        }
                        tracing::warn!(error = %e, "taking a batch of results failed; will retry");
                        break;
                    }
                };
                let full = taken.len() as i32 >= qty;
                follow_up(pool, taken, taken_at, &self.commands, &self.finalizer).await;
                if !full || stop.is_cancelled() {
                    break;
                }
                self.help.notify_one();
            }
            match &self.leader_busy {
                Some(b) => b.store(false, Ordering::SeqCst),
                // Helpers give their connection back at once: the pool is shared.
                None => conn.release(),
            }
        }
    }
}

/// After a batch: records each result's span, schedules due retries, tells
/// the finalizer about finished or blocked tasks, dead-letters what is not a
/// result.
async fn follow_up(
    pool: &PgPool,
    taken: Vec<Taken>,
    taken_at: std::time::SystemTime,
    commands: &Sender<Command>,
    finalizer: &Sender<(Uuid, TaskState)>,
) {
    for t in taken {
        let (msg_id, msg, outcome) = match t {
            Taken::Result {
                msg_id,
                msg,
                outcome,
            } => (msg_id, msg, outcome),
            Taken::Unreadable { msg_id, error } => {
                tracing::error!(msg_id, %error, "unreadable result message moved to the archive");
                dead_letter(pool, msg_id).await;
                continue;
            }
        };
        let applied = outcome.as_ref().map(|p| (p.label(), p.task_state()));
        tasker_trace::result_applied(&msg, applied.map_err(|e| e.to_string()), taken_at);
        match outcome {
            Ok(processed) => {
                if let Processed::RetryScheduled { at, .. } = &processed {
                    let wait = (*at - chrono::Utc::now()).to_std().unwrap_or_default();
                    let commands = commands.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        commands.try_send_or_drop(Command::EnqueueDueRetries);
                    });
                }
                if let Some(state) = processed
                    .task_state()
                    .filter(|s| s.is_terminal() || *s == TaskState::BlockedByFailures)
                {
                    finalizer.try_send_or_drop((msg.task_id, state));
                }
            }
            Err(
                StoreError::StepNotFound(_) | StoreError::TaskNotFound(_) | StoreError::Corrupt(_),
            ) => {
                tracing::error!(msg_id, step_id = %msg.step_id, "result for an unknown step moved to the archive");
                dead_letter(pool, msg_id).await;
            }
            Err(e) => {
                // Left in the queue: its lease expires and it is processed again.
                tracing::warn!(msg_id, step_id = %msg.step_id, error = %e, "processing a result failed; will retry");
            }
        }
    }
}

async fn dead_letter(pool: &PgPool, msg_id: i64) {
    if let Ok(mut conn) = pool.acquire().await {
        if let Err(e) = queue::archive(&mut conn, RESULTS_QUEUE, msg_id).await {
            tracing::error!(msg_id, error = %e, "archiving a result message failed");
        }
    }
}

async fn enqueuer_actor(
    pool: PgPool,
    wakeups: Wakeups,
    settings: Arc<OrchestratorSettings>,
    mut inbox: Receiver<Command>,
    shutdown: CancellationToken,
) {
    // While the database is down the sweeps are skipped (their ticks repeat)
    // and their failures, already reported by Availability, are not logged.
    let quiet = |e: &StoreError| wakeups.database().report(e);
    while let Some(cmd) = inbox.recv().await {
        if shutdown.is_cancelled() {
            return;
        }
        if !wakeups.database().is_up() {
            continue;
        }
        match cmd {
            Command::EnqueueDueRetries => {
                // Waits due (a sleep over, a signal's time-out) on the same tick.
                super::waits::wake_due(&pool, &wakeups, &settings.processor_id).await;
                // Held work under concurrency limits, where a slot is free.
                super::concurrency::admit(&pool, &wakeups, &settings.processor_id).await;
                let due = match store::retry::due_retries(&pool, 500).await {
                    Ok(d) => d,
                    Err(e) => {
                        if !quiet(&e) {
                            tracing::warn!(error = %e, "finding due retries failed");
                        }
                        continue;
                    }
                };
                let mut by_task: BTreeMap<Uuid, usize> = BTreeMap::new();
                for (task, _) in due {
                    *by_task.entry(task).or_default() += 1;
                }
                for task in by_task.keys() {
                    match store::retry::enqueue_due_retries(&pool, *task, &settings.processor_id)
                        .await
                    {
                        Ok((_, changed)) => wakeups.announce(&changed),
                        Err(e) if quiet(&e) => break,
                        Err(e) => {
                            tracing::warn!(task_id = %task, error = %e, "enqueueing due retries failed")
                        }
                    }
                }
            }
            Command::Vacuum => {
                // In its own task: a large table's vacuum must not hold up due
                // retries. Overlapping runs end at once (advisory lock).
                if let Some(every) = settings.vacuum_interval {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        if let Err(e) = store::vacuum::vacuum_churned_tables(&pool, every).await {
                            tracing::warn!(error = %e, "vacuuming churned tables failed");
                        }
                    });
                }
            }
            Command::SweepWorkers => {
                if let Some(after) = settings.unserved_step_timeout {
                    match store::worker::fail_unserved(&pool, after, &settings.processor_id).await {
                        Ok((_, changed)) => wakeups.announce(&changed),
                        Err(e) if quiet(&e) => {}
                        Err(e) => tracing::warn!(error = %e, "ending unserved steps failed"),
                    }
                }
                if let Err(e) = store::worker::forget_old(&pool).await {
                    if !quiet(&e) {
                        tracing::warn!(error = %e, "forgetting old workers failed");
                    }
                }
            }
            Command::SweepStale => {
                // Paused tasks are not stale; messages parked by a claim that
                // raced a resume are released here.
                match store::pause::repair(&pool).await {
                    Ok(changed) => wakeups.announce(&changed),
                    Err(e) if quiet(&e) => {}
                    Err(e) => tracing::warn!(error = %e, "repairing pauses failed"),
                }
                // Rate-limit buckets that are full again are as good as none.
                match store::limit::prune_idle_buckets(&pool).await {
                    Ok(_) => {}
                    Err(e) if quiet(&e) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning rate-limit buckets failed"),
                }
                let stale = store::recovery::stale_tasks(&pool, settings.stale_after, 100)
                    .await
                    .unwrap_or_default();
                for task in stale {
                    match store::recovery::recover(
                        &pool,
                        task,
                        settings.stale_action,
                        &settings.processor_id,
                    )
                    .await
                    {
                        Ok((_, changed)) => wakeups.announce(&changed),
                        Err(e) if quiet(&e) => break,
                        Err(e) => {
                            tracing::warn!(task_id = %task, error = %e, "re-evaluating a stale task failed")
                        }
                    }
                }
            }
            _ => {}
        }
    }
}
