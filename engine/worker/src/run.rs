//! One step's run on a worker: heartbeat, timeout, handler, report.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::WorkerSettings;
use crate::handler::HandlerRegistry;
use tasker_model::channel::Sender;
use tasker_model::step::log::AttemptLines;
use tasker_model::step::{kind, Outcome, StepContext, StepResultMessage};
use tasker_notify::Wakeups;
use tasker_store::db::HeldConnection;
use tasker_store::step::Claimed;
use tasker_store::step_log::AttemptLogRow;
use tasker_trace::{KeyValue, Span, SpanKind};

/// Everything a step's run needs from its worker.
pub(super) struct Job {
    pub pool: PgPool,
    pub wakeups: Wakeups,
    pub registry: Arc<HandlerRegistry>,
    pub settings: Arc<WorkerSettings>,
    pub queue: String,
    /// Fires when the worker gives up waiting at shutdown.
    pub cancel: CancellationToken,
    /// The worker's reporter (see [`report_outcomes`]).
    pub reports: Sender<Report>,
    /// Attempts finished, for the worker registry.
    pub counts: Arc<crate::presence::Counts>,
    /// Each outcome is recorded on its backend's breaker.
    pub breakers: Arc<crate::breakers::Breakers>,
}

/// How long a handed-back step stays invisible, so that a worker that has its
/// handler reads it before this one looks again.
const HAND_BACK_DELAY: Duration = Duration::from_millis(200);

/// An outcome waiting to be reported.
pub(super) struct Report {
    pub queue: String,
    pub msg_id: i64,
    pub result: StepResultMessage,
    /// What the handler logged during the attempt (often nothing).
    pub log: AttemptLines,
}

impl Report {
    /// Takes the attempt's log as a row to store, if it logged anything.
    fn take_log_row(&mut self) -> Option<AttemptLogRow> {
        (!self.log.is_empty()).then(|| AttemptLogRow {
            step_id: self.result.step_id,
            task_id: self.result.task_id,
            attempt: self.result.attempt,
            worker_id: self.result.worker_id.clone(),
            lines: std::mem::take(&mut self.log),
        })
    }
}

impl Job {
    pub async fn run(self, claimed: Claimed) {
        let Some(mut ctx) = claimed.step else {
            // The step finished, was cancelled or resolved meanwhile: nothing to run.
            if let Err(e) =
                tasker_store::step::discard(&self.pool, &self.queue, claimed.msg_id).await
            {
                tracing::warn!(error = %e, msg_id = claimed.msg_id, "discarding a step message failed");
            }
            return;
        };
        if claimed.read_ct > 1 {
            tasker_model::telemetry::record_lease_expired(&ctx.namespace);
        }
        let started_at = Utc::now();
        // The attempt's span (claim → handler → report), a child of the
        // message's trace; the handler sees it as its parent.
        let mut span = attempt_span(&ctx, &self.settings.worker_id, &self.queue);
        ctx.traceparent = Some(span.traceparent().to_string());
        let step_cancel = self.cancel.child_token();
        let heartbeat = tokio::spawn(heartbeat(
            self.wakeups.database().clone(),
            self.pool.clone(),
            self.queue.clone(),
            claimed.msg_id,
            (ctx.task_id, ctx.step_id, ctx.attempt),
            self.settings.clone(),
            step_cancel.clone(),
        ));
        let (attempt, max_attempts) = (ctx.attempt, ctx.max_attempts);
        let (step_id, task_id) = (ctx.step_id, ctx.task_id);
        let (namespace, handler) = (ctx.namespace.clone(), ctx.handler.clone());
        let clock = std::time::Instant::now();
        let step_name = ctx.step_name.clone();
        // The handler writes into the context's log; the worker keeps a
        // handle to take the lines once the attempt is over, however it ended.
        let log = ctx.log.clone();
        let outcome = if ctx.recoveries > self.settings.max_recoveries {
            // The step may be what kills its workers: stop starting it.
            Outcome::failure(
                kind::WORKER_LOST,
                format!(
                    "worker lost {} times (worker.max_recoveries = {}): each time the lease \
                     of the worker running step '{step_name}' expired",
                    ctx.recoveries, self.settings.max_recoveries
                ),
                false,
            )
        } else {
            // A result PostgreSQL would refuse (a NUL) or change fails the
            // step here, not the report statement it shares with others.
            run_step(&self.registry, ctx, step_cancel.clone())
                .await
                .checked(&step_name)
        };
        let seconds = clock.elapsed().as_secs_f64();
        heartbeat.abort();
        if let Outcome::Failure(e) = &outcome {
            span.set(KeyValue::new("tasker.error_kind", e.kind.clone()));
            span.fail(e.message.clone());
        }
        if let Outcome::Failure(e) = &outcome {
            if e.kind == NO_HANDLER {
                // Delivered to the wrong worker (its handler is not here, or
                // its component went away since the claim): hand it back.
                self.hand_back(claimed.msg_id, step_id, attempt, &handler)
                    .await;
                return;
            }
        }
        if self.cancel.is_cancelled() {
            // Shutdown gave up on this step: release it at once for another worker.
            if let Ok(mut conn) = self.pool.acquire().await {
                let _ =
                    tasker_store::queue::extend_lease(&mut conn, &self.queue, claimed.msg_id, 0)
                        .await;
                self.wakeups.hint(&self.queue);
            }
            return;
        }
        self.counts
            .record(matches!(outcome, Outcome::Success { .. }));
        if let Some(h) = self.registry.resolve(&handler, None) {
            self.breakers.record(h.backend(), &outcome);
        }
        tasker_model::telemetry::record_step(
            &namespace,
            &handler,
            &outcome,
            attempt,
            max_attempts,
            seconds,
        );
        let result = StepResultMessage {
            step_id,
            task_id,
            attempt,
            outcome,
            worker_id: self.settings.worker_id.clone(),
            started_at,
            finished_at: Utc::now(),
            traceparent: Some(span.traceparent().to_string()),
        };
        let report = Report {
            queue: self.queue.clone(),
            msg_id: claimed.msg_id,
            result,
            log: log.take(),
        };
        if let Err(unsent) = self.reports.send(report).await {
            // The reporter is gone (it never stops before the steps): report here.
            let mut r = unsent.0;
            let logs: Vec<AttemptLogRow> = r.take_log_row().into_iter().collect();
            report_with_retries(
                &mut HeldConnection::new(self.pool.clone()),
                &self.wakeups,
                &r.queue,
                &[(r.msg_id, r.result)],
                &logs,
                &self.settings.worker_id,
            )
            .await;
        }
        span.end();
    }
}

/// The span of one attempt on this worker.
fn attempt_span(ctx: &StepContext, worker_id: &str, queue: &str) -> Span {
    Span::start(
        "tasker.step.attempt",
        SpanKind::Consumer,
        ctx.traceparent.as_deref(),
        || {
            vec![
                KeyValue::new("tasker.task_id", ctx.task_id.to_string()),
                KeyValue::new("tasker.step_id", ctx.step_id.to_string()),
                KeyValue::new("tasker.step", ctx.step_name.clone()),
                KeyValue::new("tasker.handler", ctx.handler.clone()),
                KeyValue::new("tasker.namespace", ctx.namespace.clone()),
                KeyValue::new("tasker.attempt", i64::from(ctx.attempt)),
                KeyValue::new("tasker.worker_id", worker_id.to_string()),
                KeyValue::new("messaging.destination.name", queue.to_string()),
            ]
        },
    )
}

impl Job {
    async fn hand_back(&self, msg_id: i64, step_id: uuid::Uuid, attempt: u32, handler: &str) {
        match tasker_store::step::hand_back(
            &self.pool,
            &self.queue,
            msg_id,
            step_id,
            attempt,
            HAND_BACK_DELAY,
            &self.settings.worker_id,
        )
        .await
        {
            Ok(_) => {
                tracing::info!(%step_id, handler, queue = %self.queue, "handed a step back: no handler for it here");
                self.wakeups.hint(&self.queue);
            }
            // The lease runs out instead: another worker reclaims the step.
            Err(e) => {
                tracing::warn!(%step_id, error = %e, "handing a step back failed; its lease will expire")
            }
        }
    }
}

/// The error kind of an attempt whose handler this worker does not have; the
/// worker hands such a step back instead of reporting it.
pub const NO_HANDLER: &str = tasker_model::step::kind::NO_HANDLER;

/// The worker's reporter: takes the first outcome, then whatever else has
/// piled up (up to `MAX_REPORT_BATCH`), and reports them one statement per
/// queue, preceded by one statement storing the batch's handler logs when
/// some attempt logged anything. Under load this turns many small commits
/// into a few; when idle a batch is one outcome and nothing waits. Ends when
/// every sender is gone.
pub(super) async fn report_outcomes(
    pool: PgPool,
    wakeups: Wakeups,
    mut inbox: tokio::sync::mpsc::Receiver<Report>,
    worker_id: String,
) {
    const MAX_REPORT_BATCH: usize = 64;
    let mut conn = HeldConnection::new(pool.clone());
    while let Some(first) = conn.wait_idle(inbox.recv()).await {
        let mut by_queue: std::collections::BTreeMap<String, Vec<(i64, StepResultMessage)>> =
            Default::default();
        let mut logs = Vec::new();
        let mut next = Some(first);
        let mut n = 0;
        while let Some(mut r) = next.take() {
            logs.extend(r.take_log_row());
            by_queue
                .entry(r.queue)
                .or_default()
                .push((r.msg_id, r.result));
            n += 1;
            if n < MAX_REPORT_BATCH {
                next = inbox.try_recv().ok();
            }
        }
        for (queue, outcomes) in by_queue {
            // The logs go with the first queue's report: one statement for all.
            let logs = std::mem::take(&mut logs);
            report_with_retries(&mut conn, &wakeups, &queue, &outcomes, &logs, &worker_id).await;
        }
    }
}

/// Runs a handler for `ctx` as the step's policy says: the handler comes from
/// `registry`, runs on its own task (a panic becomes a failed attempt) and is
/// stopped at the step's timeout.
pub async fn run_step(
    registry: &HandlerRegistry,
    ctx: StepContext,
    cancel: CancellationToken,
) -> Outcome {
    // Takeovers from lost workers do not count against the retry budget.
    let tries = ctx.attempt.saturating_sub(ctx.recoveries);
    if tries > ctx.max_attempts {
        return Outcome::failure(
            kind::ATTEMPTS_EXHAUSTED,
            format!(
                "try {tries} exceeds max_attempts {} (an earlier attempt's lease expired)",
                ctx.max_attempts
            ),
            false,
        );
    }
    let Some(handler) = registry.resolve(&ctx.handler, None) else {
        return Outcome::failure(
            NO_HANDLER,
            format!(
                "no handler named '{}' is registered on this worker (it has: {})",
                ctx.handler,
                registry.names().join(", ")
            ),
            false,
        );
    };
    let timeout = Duration::from_secs(u64::from(ctx.timeout_seconds));
    let task = tokio::spawn(handler.call(ctx, cancel.clone()));
    let abort = task.abort_handle();
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) if join.is_panic() => {
            let payload = join.into_panic();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Outcome::failure(kind::EXCEPTION, format!("handler panicked: {msg}"), true)
        }
        Ok(Err(_)) => Outcome::failure(kind::CANCELLED, "handler was cancelled", true),
        Err(_) => {
            cancel.cancel();
            abort.abort();
            Outcome::failure(
                kind::TIMEOUT,
                format!("timed out after {}s", timeout.as_secs()),
                true,
            )
        }
    }
}

/// Extends the lease every `heartbeat_interval`; cancels the step when its task
/// is no longer live (cancelled or resolved by an operator).
async fn heartbeat(
    database: tasker_store::db::Availability,
    pool: PgPool,
    queue: String,
    msg_id: i64,
    (task_id, step_id, attempt): (uuid::Uuid, uuid::Uuid, u32),
    settings: Arc<WorkerSettings>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.heartbeat_interval);
    tick.tick().await; // the first tick is immediate
    loop {
        tick.tick().await;
        let running = tasker_store::step::Running {
            queue: &queue,
            msg_id,
            task_id,
            step_id,
            attempt,
        };
        match tasker_store::step::heartbeat(&pool, running, settings.lease_seconds as i32).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(%task_id, %step_id, attempt, "the task ended or another worker took the step over; telling the handler to stop");
                cancel.cancel();
                return;
            }
            Err(e) if database.report(&e) => {}
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; the lease may expire"),
        }
    }
}

/// Reports with a few retries; if it still fails the lease runs out and the
/// step runs again elsewhere (at-least-once). `logs` (the handler logs of
/// these attempts, or more) are stored first, in one statement, when there
/// are any; logs that cannot be stored for another reason than an outage are
/// dropped with a warning rather than holding the outcomes back.
async fn report_with_retries(
    conn: &mut HeldConnection,
    wakeups: &Wakeups,
    queue: &str,
    outcomes: &[(i64, StepResultMessage)],
    mut logs: &[AttemptLogRow],
    worker_id: &str,
) {
    let mut delay = Duration::from_millis(50);
    let mut attempt = 0;
    while attempt < 5 {
        let reported = match conn.get().await {
            Ok(c) => match tasker_store::step_log::record(c, logs).await {
                Ok(_) => {
                    logs = &[];
                    tasker_store::step::report_batch_on(c, queue, outcomes, worker_id).await
                }
                Err(e) if wakeups.database().report(&e) => Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, attempts = logs.len(), "storing handler logs failed; they are dropped");
                    logs = &[];
                    tasker_store::step::report_batch_on(c, queue, outcomes, worker_id).await
                }
            },
            Err(e) => Err(e.into()),
        };
        match reported {
            Ok(changed) => {
                wakeups.announce(&changed);
                return;
            }
            Err(e) => {
                conn.release();
                if wakeups.database().report(&e) {
                    // Not an attempt: the outcomes wait for the database (a
                    // lease that runs out meanwhile makes them stale, no more).
                    wakeups.database().wait_up().await;
                    continue;
                }
                attempt += 1;
                tracing::warn!(error = %e, attempt, outcomes = outcomes.len(), "reporting step outcomes failed");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    tracing::error!(
        outcomes = outcomes.len(),
        "giving up reporting; those steps will run again after their lease"
    );
}
