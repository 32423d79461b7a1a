//! Dispatch overhead of the C ABI's handler backends
//! (`examples/dispatch_bench.rs`).
//!
//! Each case calls one backend's `Handler::call` for a no-op handler and awaits
//! the outcome, exactly as the worker host does for every step (the database
//! is left out: it costs the same for every backend). Cases: an in-process Rust
//! handler (the floor), a C push callback inline (`TASKER_HANDLER_NONBLOCKING`)
//! and on the blocking pool (the default), and a pulled step taken by another
//! thread through `tasker_worker_next_step`'s path and completed through the C
//! functions (`tasker::bench::serve_pulled_through_c`, behind tasker-abi's
//! `bench` feature).

use std::ffi::c_void;
use std::time::{Duration, Instant};

use tasker::ffi::PushHandler;
use tasker::ffi::{self, TaskerStep};
use tasker::handler::{PullHandler, PullQueue};
use tasker_worker::handler::rust::handler_fn;
use tasker_worker::handler::Handler;
use tokio_util::sync::CancellationToken;

/// Median and 99th percentile of one case, per step.
#[derive(Debug, Clone)]
pub struct Figures {
    pub case: &'static str,
    pub median: Duration,
    pub p99: Duration,
}

/// The C push callback: succeeds with `null` at once.
unsafe extern "C" fn noop(step: *mut TaskerStep, _user_data: *mut c_void) -> i32 {
    // SAFETY: the step is live during the callback.
    unsafe { ffi::tasker_step_succeed(step, c"null".as_ptr()) as i32 }
}

async fn measure(case: &'static str, handler: &dyn Handler, steps: usize) -> Figures {
    let ctx = tasker::bench::sample_context("noop");
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

/// Runs every case for `steps` steps (at least 1) on a runtime like a worker's.
pub fn run(steps: usize) -> anyhow::Result<Vec<Figures>> {
    let steps = steps.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let queue = PullQueue::new(16);
    let puller = {
        let queue = queue.clone();
        // Leaves after two idle seconds.
        std::thread::spawn(move || {
            tasker::bench::serve_pulled_through_c(&queue, Duration::from_secs(2))
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
    let _ = puller.join();
    Ok(figures)
}
