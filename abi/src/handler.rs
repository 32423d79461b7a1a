//! A step being served through the ABI ([`StepHandle`]), and the pull
//! handler backend: [`PullHandler`] queues steps for the caller's threads
//! ([`PullQueue`]). The push backend, a C callback the host calls, is
//! `crate::ffi::PushHandler`.

use std::ffi::CString;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use tasker_model::step::log::LogLevel;
use tasker_model::step::{kind, parse_json_exact, JsonProblem, Outcome, StepContext, StepError};
use tasker_worker::handler::{Handler, HandlerFuture};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::error::AbiError;

/// One attempt of one step, handed to a handler: its context, and the one slot
/// for its outcome.
pub struct StepHandle {
    ctx: StepContext,
    /// The context as JSON, made on first request.
    context_json: OnceLock<CString>,
    /// Scalar strings handed to C (borrowed until the handle is freed).
    name: CString,
    /// The W3C `traceparent` as a C string ("" when the step has none).
    traceparent: CString,
    /// Where the outcome goes; taken by the first completion.
    reply: Mutex<Option<oneshot::Sender<Outcome>>>,
    cancel: CancellationToken,
    /// Handed out by `next_step` (the caller frees it) rather than lent to a
    /// push callback (the host frees it).
    pulled: bool,
}

impl StepHandle {
    pub(crate) fn new(
        ctx: StepContext,
        reply: oneshot::Sender<Outcome>,
        cancel: CancellationToken,
        pulled: bool,
    ) -> Self {
        let name = CString::new(ctx.step_name.replace('\0', "?")).unwrap_or_default();
        let traceparent =
            CString::new(ctx.traceparent.as_deref().unwrap_or_default()).unwrap_or_default();
        StepHandle {
            ctx,
            context_json: OnceLock::new(),
            name,
            traceparent,
            reply: Mutex::new(Some(reply)),
            cancel,
            pulled,
        }
    }

    /// The step's context.
    pub fn context(&self) -> &StepContext {
        &self.ctx
    }

    /// The step's context as a JSON object (the fields of [`StepContext`]).
    pub fn context_json(&self) -> &CString {
        self.context_json.get_or_init(|| {
            let json = serde_json::to_string(&self.ctx).unwrap_or_else(|_| "{}".into());
            // JSON escapes control characters, so it never holds a NUL byte.
            CString::new(json).unwrap_or_default()
        })
    }

    /// The step's name as a C string.
    pub fn name(&self) -> &CString {
        &self.name
    }

    /// The W3C `traceparent` of this attempt (`00-<trace id>-<span id>-<flags>`),
    /// when the worker that claimed it traces.
    pub fn traceparent(&self) -> Option<&str> {
        self.ctx.traceparent.as_deref()
    }

    /// The `traceparent` as a C string: "" when the attempt has none.
    pub fn traceparent_c(&self) -> &CString {
        &self.traceparent
    }

    /// The trace id of the `traceparent` (32 hex digits), if any.
    pub fn trace_id(&self) -> Option<&str> {
        self.ctx.trace_id()
    }

    /// Appends a line to this attempt's log (`tasker step logs` shows it once
    /// the attempt ends). Never blocks for long and never fails: past the
    /// per-attempt caps (`tasker_model::step::log`) lines are counted as
    /// dropped. Lines written after the outcome may miss the stored log.
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.ctx.log.push(level, message);
    }

    /// True once the worker no longer wants this step's outcome: its task was
    /// cancelled, it timed out, or the worker is stopping. A long handler should
    /// check this and stop early.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes the step with a result given as JSON text. Text that is not
    /// JSON is [`AbiError::InvalidJson`] and leaves the step open (the C
    /// contract); JSON holding a value tasker cannot store exactly fails the
    /// step (kind `result`, not retried) and is [`AbiError::Unrepresentable`]
    /// with the message recorded.
    pub fn succeed_json(&self, text: &str) -> Result<(), AbiError> {
        match parse_json_exact(text) {
            Ok(value) => self.complete(Outcome::success(value)),
            Err(JsonProblem::Syntax(detail)) => Err(AbiError::InvalidJson {
                name: "result_json",
                detail,
            }),
            Err(problem) => {
                let error = StepError::result(&self.ctx.step_name, &problem);
                let message = error.message.clone();
                self.complete(Outcome::Failure(error))?;
                Err(AbiError::Unrepresentable(message))
            }
        }
    }

    /// Completes the step with a result given as JSON text, or, when the text
    /// cannot be stored as it is (not JSON, or not exactly), fails the step
    /// with kind `result` (not retried): `Ok(Some(message))` then says why.
    /// What the Python and Ruby bindings use: their serializers made the text,
    /// so nothing the caller could do would fix it.
    pub fn succeed_or_refuse(&self, text: &str) -> Result<Option<String>, AbiError> {
        match parse_json_exact(text) {
            Ok(value) => self.complete(Outcome::success(value)).map(|()| None),
            Err(problem) => {
                let error = StepError::result(&self.ctx.step_name, &problem);
                let message = error.message.clone();
                self.complete(Outcome::Failure(error))?;
                Ok(Some(message))
            }
        }
    }

    /// Gives the step its outcome. Only the first call counts.
    pub fn complete(&self, outcome: Outcome) -> Result<(), AbiError> {
        let reply = self
            .reply
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or(AbiError::AlreadyCompleted)?;
        reply.send(outcome).map_err(|_| AbiError::StepGone)
    }

    /// True for a step from `next_step`, false for one lent to a push callback.
    pub fn is_pulled(&self) -> bool {
        self.pulled
    }

    /// True when an outcome was given.
    pub fn is_completed(&self) -> bool {
        self.reply
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }
}

/// Waits for the outcome of a step handed out; a handle dropped without one is
/// a retryable failure.
async fn outcome_of(rx: oneshot::Receiver<Outcome>, what: &'static str) -> Outcome {
    rx.await.unwrap_or_else(|_| {
        Outcome::failure(
            kind::NO_OUTCOME,
            format!("the {what} handler gave the step no outcome"),
            true,
        )
    })
}

/// Steps waiting for the caller's threads ([`crate::Worker::next_step`]).
///
/// Bounded by the worker's concurrency: the host never runs more steps than
/// that at once, so the queue cannot fill; if it ever did, the step fails as
/// retryable rather than block the host.
#[derive(Clone)]
pub struct PullQueue {
    tx: Sender<Arc<StepHandle>>,
    rx: Receiver<Arc<StepHandle>>,
}

impl PullQueue {
    pub fn new(capacity: usize) -> PullQueue {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        PullQueue { tx, rx }
    }

    /// The next step, waiting up to `timeout`; `None` when none came. Steps the
    /// host gave up on while they waited here are skipped.
    pub fn next(&self, timeout: Duration) -> Option<Arc<StepHandle>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.rx.recv_deadline(deadline) {
                Ok(step) if step.is_cancelled() => continue,
                Ok(step) => return Some(step),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    pub(crate) fn receiver(&self) -> &Receiver<Arc<StepHandle>> {
        &self.rx
    }

    /// Steps waiting now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// True when no step waits.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// The handler backend of pulled handler names: queues each step for the
/// caller's threads and waits for its outcome.
pub struct PullHandler {
    queue: PullQueue,
}

impl PullHandler {
    pub fn new(queue: PullQueue) -> PullHandler {
        PullHandler { queue }
    }
}

impl Handler for PullHandler {
    fn call(&self, ctx: StepContext, cancel: CancellationToken) -> HandlerFuture {
        let (tx, rx) = oneshot::channel();
        let step = Arc::new(StepHandle::new(ctx, tx, cancel, true));
        match self.queue.tx.try_send(step) {
            Ok(()) => Box::pin(outcome_of(rx, "pull")),
            Err(TrySendError::Full(_)) => Box::pin(std::future::ready(Outcome::failure(
                kind::INTERNAL,
                "the worker's pull queue is full (more steps than its concurrency)",
                true,
            ))),
            Err(TrySendError::Disconnected(_)) => Box::pin(std::future::ready(Outcome::failure(
                kind::CANCELLED,
                "the worker's pull queue is closed",
                true,
            ))),
        }
    }

    fn backend(&self) -> &'static str {
        "pull"
    }
}

/// Parses JSON text given as argument `name` (a task's input, a step's
/// result), refusing what tasker cannot store exactly
/// ([`tasker_model::step::parse_json_exact`]): not JSON is
/// [`AbiError::InvalidJson`], an inexact value [`AbiError::Unrepresentable`]
/// naming its path.
pub fn json_exact(text: &str, name: &'static str) -> Result<serde_json::Value, AbiError> {
    parse_json_exact(text).map_err(|problem| match problem {
        JsonProblem::Syntax(detail) => AbiError::InvalidJson { name, detail },
        problem => AbiError::Unrepresentable(format!(
            "argument `{name}` holds a value tasker cannot store exactly {problem}"
        )),
    })
}
