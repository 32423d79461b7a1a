//! Benchmark hooks, compiled only with the off-by-default `bench` feature
//! (libtasker and the language packages ship without them).
//!
//! The benchmarks themselves live elsewhere: the C ABI's dispatch costs in
//! `tasker-bench` (`engine/bench`, `examples/dispatch_bench.rs`), the Ruby
//! gem's in `bindings-ruby/bench/`. What is here needs this crate from the
//! inside (the C handle table) or is shared by them:
//!
//! - [`serve_pulled_through_c`]: a C program's pull loop, minus the C;
//! - [`sample_context`], [`pull_round_trips`], [`rust_pull_round_trips`]: one
//!   step at a time through a [`PullHandler`], as the worker host hands it over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tasker_model::step::{Outcome, StepContext};
use tasker_worker::handler::Handler;
use tokio_util::sync::CancellationToken;

use crate::ffi::{self, TaskerStep};
use crate::handler::{PullHandler, PullQueue};

/// Serves `queue` as a C program's pull loop does: each step gets a handle
/// (as `tasker_worker_next_step` hands it out), is completed with
/// `tasker_step_succeed(step, "null")` and freed with `tasker_step_free`.
/// Returns once no step came for `idle`.
pub fn serve_pulled_through_c(queue: &PullQueue, idle: Duration) {
    while let Some(step) = queue.next(idle) {
        let handle: *mut TaskerStep = ffi::pointer_of(ffi::STEPS.insert(step));
        // SAFETY: a live pulled step; the result is a NUL-terminated string.
        unsafe {
            ffi::tasker_step_succeed(handle, c"null".as_ptr());
        }
        ffi::tasker_step_free(handle);
    }
}

/// A step context for benchmarks: namespace `bench`, handler `handler`, a
/// small input, one parent result and a handler config (what a no-op handler
/// of an example template sees).
pub fn sample_context(handler: &str) -> StepContext {
    StepContext {
        task_id: uuid::Uuid::now_v7(),
        step_id: uuid::Uuid::now_v7(),
        namespace: "bench".into(),
        template: "bench".into(),
        step_name: "noop".into(),
        handler: handler.into(),
        attempt: 1,
        max_attempts: 3,
        input: serde_json::json!({"value": 3}),
        parent_results: std::collections::BTreeMap::from([(
            "parent".to_string(),
            serde_json::json!(9),
        )]),
        config: serde_json::json!({"op": "noop"}),
        timeout_seconds: 30,
        recoveries: 0,
        traceparent: None,
        log: Default::default(),
    }
}

/// Hands `n` steps for `handler` to a [`PullHandler`] over `queue`, one at a
/// time from the calling thread (exactly what the worker host does for a
/// pulled handler), and returns each round trip in nanoseconds: from the
/// hand-off until the outcome came back. Another thread must take the steps
/// from `queue` and complete them.
pub fn pull_round_trips(queue: &PullQueue, n: usize, handler: &str) -> Result<Vec<u64>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("starting the benchmark runtime: {e}"))?;
    let pull = PullHandler::new(queue.clone());
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let ctx = sample_context(handler);
        let started = Instant::now();
        let outcome = runtime.block_on(pull.call(ctx, CancellationToken::new()));
        times.push(started.elapsed().as_nanos() as u64);
        if let Outcome::Failure(e) = outcome {
            return Err(format!("a benchmark step failed: {}", e.message));
        }
    }
    Ok(times)
}

/// The baseline of the language benchmarks: [`pull_round_trips`] with a Rust
/// thread that completes each step with `{}` at once.
pub fn rust_pull_round_trips(n: usize) -> Result<Vec<u64>, String> {
    let queue = PullQueue::new(1);
    let server_queue = queue.clone();
    let done = Arc::new(AtomicBool::new(false));
    let server_done = done.clone();
    let server = std::thread::spawn(move || {
        while !server_done.load(Ordering::Relaxed) {
            if let Some(step) = server_queue.next(Duration::from_millis(50)) {
                let _ = &step.context().input;
                let _ = step.complete(Outcome::success(serde_json::json!({})));
            }
        }
    });
    let result = pull_round_trips(&queue, n, "noop");
    done.store(true, Ordering::Relaxed);
    let _ = server.join();
    result
}
