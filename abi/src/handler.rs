//! A step being served through the ABI, and the two handler backends that
//! produce them: [`PushHandler`] (a C callback the host calls) and
//! [`PullHandler`] (steps queued for the caller's threads, see [`PullQueue`]).

use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use tasker_model::step::{Outcome, StepContext};
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
    /// Where the outcome goes; taken by the first completion.
    reply: Mutex<Option<oneshot::Sender<Outcome>>>,
    cancel: CancellationToken,
    /// Handed out by `next_step` (the caller frees it) rather than lent to a
    /// push callback (the host frees it).
    pulled: bool,
}

impl StepHandle {
    fn new(
        ctx: StepContext,
        reply: oneshot::Sender<Outcome>,
        cancel: CancellationToken,
        pulled: bool,
    ) -> Self {
        let name = CString::new(ctx.step_name.replace('\0', "?")).unwrap_or_default();
        StepHandle {
            ctx,
            context_json: OnceLock::new(),
            name,
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

    /// True once the worker no longer wants this step's outcome: its task was
    /// cancelled, it timed out, or the worker is stopping. A long handler should
    /// check this and stop early.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
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
            "no_outcome",
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
                "pull_queue_full",
                "the worker's pull queue is full (more steps than its concurrency)",
                true,
            ))),
            Err(TrySendError::Disconnected(_)) => Box::pin(std::future::ready(Outcome::failure(
                "stopped",
                "the worker's pull queue is closed",
                true,
            ))),
        }
    }

    fn backend(&self) -> &'static str {
        "pull"
    }
}

/// A push handler's callback: runs one step. It must give the step an
/// outcome with `tasker_step_succeed` or `tasker_step_fail` before returning
/// (returning without one fails the step: retryable if the return value is
/// not 0, permanent otherwise, since that is a bug in the handler). The step
/// handle is valid only during the call. Called on the worker's threads,
/// possibly several at once.
pub type TaskerHandlerFn =
    Option<unsafe extern "C" fn(step: *mut crate::ffi::TaskerStep, user_data: *mut c_void) -> i32>;

/// Frees a push handler's `user_data` when the handler is replaced or its
/// worker freed. Called once, on any thread.
pub type TaskerFreeFn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A push callback that is not NULL.
pub type HandlerFn =
    unsafe extern "C" fn(step: *mut crate::ffi::TaskerStep, user_data: *mut c_void) -> i32;

/// The handler backend of a C callback.
pub struct PushHandler {
    callback: HandlerFn,
    /// The caller's pointer, as a number: only the callbacks touch it.
    user_data: usize,
    free: TaskerFreeFn,
    /// Run on the blocking pool (true) or inline on the async threads.
    blocking: bool,
}

impl PushHandler {
    pub fn new(
        callback: HandlerFn,
        user_data: *mut c_void,
        free: TaskerFreeFn,
        blocking: bool,
    ) -> PushHandler {
        PushHandler {
            callback,
            user_data: user_data as usize,
            free,
            blocking,
        }
    }

    fn run(
        callback: HandlerFn,
        user_data: usize,
        ctx: StepContext,
        cancel: CancellationToken,
    ) -> Outcome {
        let (tx, mut rx) = oneshot::channel();
        let step = Arc::new(StepHandle::new(ctx, tx, cancel, false));
        let handle = crate::ffi::STEPS.insert(step);
        // SAFETY: the caller registered `callback` as callable from any thread
        // with `user_data`; the step handle stays live until it returns.
        let status = unsafe {
            callback(
                handle as *mut crate::ffi::TaskerStep,
                user_data as *mut c_void,
            )
        };
        let _ = crate::ffi::STEPS.remove(handle);
        match rx.try_recv() {
            Ok(outcome) => outcome,
            Err(_) if status != 0 => Outcome::failure(
                "handler",
                format!("the C handler returned status {status} without an outcome"),
                true,
            ),
            Err(_) => Outcome::failure(
                "no_outcome",
                "the C handler returned without calling tasker_step_succeed or tasker_step_fail",
                false,
            ),
        }
    }
}

impl Handler for PushHandler {
    fn call(&self, ctx: StepContext, cancel: CancellationToken) -> HandlerFuture {
        let (callback, user_data) = (self.callback, self.user_data);
        if !self.blocking {
            return Box::pin(std::future::ready(Self::run(
                callback, user_data, ctx, cancel,
            )));
        }
        let job = tokio::task::spawn_blocking(move || Self::run(callback, user_data, ctx, cancel));
        Box::pin(async move {
            job.await.unwrap_or_else(|e| {
                Outcome::failure("panic", format!("the C handler's thread failed: {e}"), true)
            })
        })
    }

    fn backend(&self) -> &'static str {
        "c"
    }
}

impl Drop for PushHandler {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: `free` was registered to be called once with `user_data`.
            unsafe { free(self.user_data as *mut c_void) };
        }
    }
}
