//! The push handler backend: a C callback the worker host calls on its own
//! threads, with the step as a `TaskerStep` handle valid during the call.

use std::ffi::c_void;
use std::sync::Arc;

use tasker_model::step::{kind, Outcome, StepContext};
use tasker_worker::handler::{Handler, HandlerFuture};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::handler::StepHandle;

/// A push handler's callback: runs one step. It must give the step an
/// outcome with `tasker_step_succeed` or `tasker_step_fail` before returning
/// (returning without one fails the step: retryable with error kind `handler`
/// if the return value is not 0, else not retried with kind `no_outcome`,
/// since that is a bug in the handler). The step handle is valid only during
/// the call. Called on the worker's threads, possibly several at once.
pub type TaskerHandlerFn =
    Option<unsafe extern "C" fn(step: *mut super::TaskerStep, user_data: *mut c_void) -> i32>;

/// Frees a push handler's `user_data` when the handler is replaced or its
/// worker freed. Called once, on any thread.
pub type TaskerFreeFn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A push callback that is not NULL.
pub type HandlerFn =
    unsafe extern "C" fn(step: *mut super::TaskerStep, user_data: *mut c_void) -> i32;

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
        let handle = super::STEPS.insert(step);
        // SAFETY: the caller registered `callback` as callable from any thread
        // with `user_data`; the step handle stays live until it returns.
        let status =
            unsafe { callback(handle as *mut super::TaskerStep, user_data as *mut c_void) };
        let _ = super::STEPS.remove(handle);
        match rx.try_recv() {
            Ok(outcome) => outcome,
            Err(_) if status != 0 => Outcome::failure(
                kind::HANDLER,
                format!("the C handler returned status {status} without an outcome"),
                true,
            ),
            Err(_) => Outcome::failure(
                kind::NO_OUTCOME,
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
                Outcome::failure(
                    kind::INTERNAL,
                    format!("the C handler's thread failed: {e}"),
                    true,
                )
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
