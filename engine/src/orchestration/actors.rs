//! The actors and the router. Each actor owns one bounded inbox and one concern.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Command, OrchestratorSettings};
use crate::channel::{self, Sender};
use crate::queue::{self, Message, RESULTS_QUEUE};
use crate::state::TaskState;
use crate::step::StepResultMessage;
use crate::store::result::Processed;
use crate::store::template::TemplateCache;
use crate::store::{self, StoreError};

/// Result batches processed at once, at most (per orchestrator). Each batch is
/// one statement and one commit (`store::result::process_batch`).
const RESULT_BATCHES_IN_FLIGHT: usize = 4;
/// Task creations run at once, at most (per orchestrator).
const REQUEST_PARALLELISM: usize = 8;

/// The actors' inboxes.
pub(super) struct Actors {
    task_requests: Sender<Command>,
    results: Sender<Vec<Message>>,
    enqueuer: Sender<Command>,
}

impl Actors {
    pub fn spawn(
        pool: PgPool,
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
            templates,
            settings.clone(),
            req_rx,
        ));
        tokio::spawn(result_actor(
            pool.clone(),
            settings.clone(),
            res_rx,
            commands,
            finalizer,
        ));
        tokio::spawn(enqueuer_actor(pool.clone(), settings, enq_rx, shutdown));
        tokio::spawn(finalizer_actor(pool, fin_rx));
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
            Command::ProcessResults(batch) => actors.results.send(batch).await.is_ok(),
            c @ Command::CreateTask(..) => actors.task_requests.send(c).await.is_ok(),
            c @ (Command::EnqueueDueRetries | Command::SweepStale) => {
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
            tokio::spawn(async move {
                let created =
                    store::task::create(&pool, &templates, &req, &settings.processor_id).await;
                let _ = reply.send(created);
                drop(permit);
            });
        }
    }
}

async fn result_actor(
    pool: PgPool,
    settings: Arc<OrchestratorSettings>,
    mut inbox: Receiver<Vec<Message>>,
    commands: Sender<Command>,
    finalizer: Sender<(Uuid, TaskState)>,
) {
    // Batches overlap (RESULT_BATCHES_IN_FLIGHT), so the reader's next batch is
    // processed while the previous one commits.
    let permits = Arc::new(tokio::sync::Semaphore::new(RESULT_BATCHES_IN_FLIGHT));
    while let Some(batch) = inbox.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (pool, settings, commands, finalizer) = (
            pool.clone(),
            settings.clone(),
            commands.clone(),
            finalizer.clone(),
        );
        tokio::spawn(async move {
            handle_results(&pool, &settings, batch, &commands, &finalizer).await;
            drop(permit);
        });
    }
}

async fn handle_results(
    pool: &PgPool,
    settings: &OrchestratorSettings,
    batch: Vec<Message>,
    commands: &Sender<Command>,
    finalizer: &Sender<(Uuid, TaskState)>,
) {
    let mut results = Vec::with_capacity(batch.len());
    for m in batch {
        match serde_json::from_value::<StepResultMessage>(m.message) {
            Ok(msg) => results.push((m.msg_id, msg)),
            Err(e) => {
                tracing::error!(msg_id = m.msg_id, error = %e, "unreadable result message moved to the archive");
                dead_letter(pool, m.msg_id).await;
            }
        }
    }
    if results.is_empty() {
        return;
    }
    let outcomes = match store::result::process_batch(pool, &results, &settings.processor_id).await
    {
        Ok(o) => o,
        Err(e) => {
            // Left in the queue: their leases expire and they are processed again.
            tracing::warn!(results = results.len(), error = %e, "processing a batch of results failed; will retry");
            return;
        }
    };
    for ((msg_id, msg), outcome) in results.iter().zip(outcomes) {
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
                dead_letter(pool, *msg_id).await;
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
    settings: Arc<OrchestratorSettings>,
    mut inbox: Receiver<Command>,
    shutdown: CancellationToken,
) {
    while let Some(cmd) = inbox.recv().await {
        if shutdown.is_cancelled() {
            return;
        }
        match cmd {
            Command::EnqueueDueRetries => {
                let due = match store::result::due_retries(&pool, 500).await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(error = %e, "finding due retries failed");
                        continue;
                    }
                };
                let mut by_task: BTreeMap<Uuid, usize> = BTreeMap::new();
                for (task, _) in due {
                    *by_task.entry(task).or_default() += 1;
                }
                for task in by_task.keys() {
                    if let Err(e) =
                        store::result::enqueue_due_retries(&pool, *task, &settings.processor_id)
                            .await
                    {
                        tracing::warn!(task_id = %task, error = %e, "enqueueing due retries failed");
                    }
                }
            }
            Command::SweepStale => {
                let stale = store::recovery::stale_tasks(&pool, settings.stale_after, 100)
                    .await
                    .unwrap_or_default();
                for task in stale {
                    if let Err(e) = store::recovery::recover(
                        &pool,
                        task,
                        settings.stale_action,
                        &settings.processor_id,
                    )
                    .await
                    {
                        tracing::warn!(task_id = %task, error = %e, "re-evaluating a stale task failed");
                    }
                }
            }
            _ => {}
        }
    }
}

async fn finalizer_actor(pool: PgPool, mut inbox: Receiver<(Uuid, TaskState)>) {
    while let Some((task_id, state)) = inbox.recv().await {
        match state {
            TaskState::Complete => {
                tracing::info!(%task_id, "task complete");
                match store::analytics::task_latency_seconds(&pool, task_id).await {
                    Ok(Some(secs)) => crate::telemetry::record_task_latency(secs),
                    Ok(None) => {}
                    Err(e) => tracing::debug!(%task_id, error = %e, "task latency unavailable"),
                }
            }
            other => tracing::warn!(%task_id, state = %other, "task needs attention"),
        }
    }
}
