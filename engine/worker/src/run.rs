//! One step's run on a worker: heartbeat, timeout, handler, report.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::WorkerSettings;
use crate::handler::HandlerRegistry;
use crate::report::Report;
use tasker_model::channel::Sender;
use tasker_model::step::{kind, Outcome, StepContext, StepResultMessage};
use tasker_notify::Wakeups;
use tasker_store::step::Claimed;
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
    /// The worker's reporter (see [`crate::report::report_outcomes`]).
    pub reports: Sender<Report>,
    /// Attempts finished, for the worker registry.
    pub counts: Arc<crate::presence::Counts>,
    /// Each outcome is recorded on its backend's breaker.
    pub breakers: Arc<crate::breakers::Breakers>,
}

/// How long a handed-back step stays invisible, so that a worker that has its
/// handler reads it before this one looks again.
const HAND_BACK_DELAY: Duration = Duration::from_millis(200);

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
            crate::report::report_alone(&self.pool, &self.wakeups, &self.settings, unsent.0).await;
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
