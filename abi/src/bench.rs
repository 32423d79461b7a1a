//! Dispatch overhead of the ABI's handler backends, for `examples/dispatch_bench.rs`.
//!
//! Each case calls one backend's `Handler::call` for a no-op handler and awaits
//! the outcome, exactly as the worker host does for every step (the database
//! is left out: it costs the same for every backend). Cases: an in-process Rust
//! handler (the floor), a C push callback inline (`TASKER_HANDLER_NONBLOCKING`)
//! and on the blocking pool (the default), and a pulled step taken by another
//! thread through `tasker_worker_next_step`'s path and completed through the C
//! functions.

use std::ffi::c_void;
use std::time::{Duration, Instant};

use tasker_model::step::StepContext;
use tasker_worker::handler::rust::handler_fn;
use tasker_worker::handler::Handler;
use tokio_util::sync::CancellationToken;

use crate::ffi::{self, TaskerStep};
use crate::step::{PullHandler, PullQueue, PushHandler};

/// Median and 99th percentile of one case, per step.
#[derive(Debug, Clone)]
pub struct Figures {
    pub case: &'static str,
    pub median: Duration,
    pub p99: Duration,
}

unsafe extern "C" fn noop(step: *mut TaskerStep, _user_data: *mut c_void) -> i32 {
    // SAFETY: the step is live during the callback.
    unsafe { ffi::tasker_step_succeed(step, c"null".as_ptr()) as i32 }
}

/// A step context for benchmarks: namespace `bench`, handler `handler`, a
/// small input, one parent result and a handler config (what a no-op handler
/// of an example template sees). The Ruby and Python benchmarks use it too.
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
    }
}

/// Hands `n` steps for `handler` to a [`PullHandler`] over `queue`, one at a
/// time from the calling thread (exactly what the worker host does for a
/// pulled handler), and returns each round trip in nanoseconds: from the
/// hand-off until the outcome came back. Another thread must take the steps
/// from `queue` and complete them. The Ruby and Python benchmarks drive their
/// handlers with it.
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
        if let tasker_model::step::Outcome::Failure(e) = outcome {
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
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server_done = done.clone();
    let server = std::thread::spawn(move || {
        while !server_done.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(step) = server_queue.next(Duration::from_millis(50)) {
                let _ = &step.context().input;
                let _ = step.complete(tasker_model::step::Outcome::success(serde_json::json!({})));
            }
        }
    });
    let result = pull_round_trips(&queue, n, "noop");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = server.join();
    result
}

async fn measure(case: &'static str, handler: &dyn Handler, steps: usize) -> Figures {
    let ctx = sample_context("noop");
    for _ in 0..steps / 10 {
        handler.call(ctx.clone(), CancellationToken::new()).await;
    }
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let c = ctx.clone();
        let start = Instant::now();
        handler.call(c, CancellationToken::new()).await;
        times.push(start.elapsed());
    }
    times.sort();
    Figures {
        case,
        median: times[times.len() / 2],
        p99: times[times.len() * 99 / 100],
    }
}

/// Runs every case for `steps` steps on a runtime like a worker's.
pub fn run(steps: usize) -> Vec<Figures> {
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let queue = PullQueue::new(16);
    let puller = {
        let queue = queue.clone();
        std::thread::spawn(move || {
            while let Some(step) = queue.next(Duration::from_secs(2)) {
                let handle: *mut TaskerStep = ffi::pointer_of(ffi::STEPS.insert(step));
                // SAFETY: a live pulled step.
                unsafe {
                    ffi::tasker_step_succeed(handle, c"null".as_ptr());
                    ffi::tasker_step_free(handle);
                }
            }
        })
    };
    let figures = runtime.block_on(async {
        let rust = handler_fn(|_ctx, _cancel| async { Ok(serde_json::Value::Null) });
        let inline = PushHandler::new(noop, std::ptr::null_mut(), None, false);
        let blocking = PushHandler::new(noop, std::ptr::null_mut(), None, true);
        let pull = PullHandler::new(queue.clone());
        vec![
            measure("rust (in-process, the floor)", rust.as_ref(), steps).await,
            measure("c push, nonblocking (inline)", &inline, steps).await,
            measure("c push, blocking (thread pool)", &blocking, steps).await,
            measure("c pull (another thread)", &pull, steps).await,
        ]
    });
    drop(queue);
    // The puller leaves after two idle seconds.
    let _ = puller.join();
    figures
}
