//! An in-process pull queue without a worker or a database: the round trip of
//! one step through the pull contract ([`pull_round_trips`]: a Rust thread
//! queues a step with `PullHandler::call` and waits for its outcome); the
//! step is taken with `PullQueue::next` and completed by Python (the
//! package's real dispatch path).
//!
//! [`BenchQueue`] is always built: the unit tests (`tests/test_unit.py`) drive
//! the dispatch path through it. The benchmarks' own pieces (the Rust
//! baseline [`bench_rust_dispatch`] and the no-op Rust handler of
//! `bench/e2e_bench.py`) are built only with the `bench` feature, which the
//! scripts in `bench/` build with. Latencies are per step, in nanoseconds.

use std::time::Instant;

use pyo3::prelude::*;
use tasker::handler::{PullHandler, PullQueue};
use tasker_model::step::{Outcome, StepContext};
use tasker_worker::handler::Handler;
use tokio_util::sync::CancellationToken;

use crate::{PyStep, TaskerError};

/// A pull queue without a worker: Python takes its steps with `next` while
/// `run` queues them.
#[pyclass(frozen, module = "tasker._tasker", name = "BenchQueue")]
pub(crate) struct BenchQueue {
    queue: PullQueue,
}

#[pymethods]
impl BenchQueue {
    #[new]
    fn new() -> Self {
        BenchQueue {
            queue: PullQueue::new(1),
        }
    }

    /// The next queued step, waiting up to `timeout` seconds (without the GIL).
    fn next(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<PyStep>> {
        let timeout = crate::seconds(timeout, "timeout")?;
        let queue = self.queue.clone();
        let step = py.detach(move || queue.next(timeout));
        Ok(step.map(|inner| PyStep { inner }))
    }

    /// Queues one step for handler `handler` (another thread must serve it)
    /// and returns its outcome as JSON text: `{"status": "success", "result":
    /// ...}` or `{"status": "failure", "message": ..., "kind": ..., ...}`.
    fn outcome(&self, py: Python<'_>, handler: String) -> PyResult<String> {
        let queue = self.queue.clone();
        py.detach(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| format!("starting the runtime: {e}"))?;
            let pull = PullHandler::new(queue);
            let outcome =
                runtime.block_on(pull.call(sample_context(&handler), CancellationToken::new()));
            serde_json::to_string(&outcome).map_err(|e| e.to_string())
        })
        .map_err(TaskerError::new_err)
    }

    /// As `outcome`, for a step whose context carries `traceparent`; returns
    /// `[outcome, log]` as JSON text, `log` being what the handler wrote to
    /// the attempt's log (`{"lines": [{"at", "level", "message"}], "dropped": n}`).
    #[pyo3(signature = (handler, traceparent=None))]
    fn outcome_and_log(
        &self,
        py: Python<'_>,
        handler: String,
        traceparent: Option<String>,
    ) -> PyResult<String> {
        let queue = self.queue.clone();
        py.detach(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| format!("starting the runtime: {e}"))?;
            let mut ctx = sample_context(&handler);
            ctx.traceparent = traceparent;
            let log = ctx.log.clone();
            let outcome =
                runtime.block_on(PullHandler::new(queue).call(ctx, CancellationToken::new()));
            serde_json::to_string(&(outcome, log.take())).map_err(|e| e.to_string())
        })
        .map_err(TaskerError::new_err)
    }

    /// Queues `n` steps for handler `handler`, one at a time, and returns each
    /// one's round trip in nanoseconds. Another thread must serve them.
    fn run(&self, py: Python<'_>, n: usize, handler: String) -> PyResult<Vec<u64>> {
        let queue = self.queue.clone();
        py.detach(move || pull_round_trips(&queue, n, &handler))
            .map_err(TaskerError::new_err)
    }
}

/// The context of a queued step: namespace `bench`, step `noop`, handler
/// `handler`, input `{"value": 3}`, one parent result and a handler config.
fn sample_context(handler: &str) -> StepContext {
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

/// Hands `n` steps for `handler` to a `PullHandler` over `queue`, one at a
/// time (what the worker host does for a pulled handler); each round trip in
/// nanoseconds. Another thread must take the steps and complete them.
fn pull_round_trips(queue: &PullQueue, n: usize, handler: &str) -> Result<Vec<u64>, String> {
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

/// The same round trip with a Rust no-op handler on a Rust thread.
#[cfg(feature = "bench")]
#[pyfunction]
pub(crate) fn bench_rust_dispatch(py: Python<'_>, n: usize) -> PyResult<Vec<u64>> {
    py.detach(move || rust_pull_round_trips(n))
        .map_err(TaskerError::new_err)
}

/// [`pull_round_trips`] with a Rust thread that completes each step with `{}`.
#[cfg(feature = "bench")]
fn rust_pull_round_trips(n: usize) -> Result<Vec<u64>, String> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let queue = PullQueue::new(1);
    let server_queue = queue.clone();
    let done = Arc::new(AtomicBool::new(false));
    let server_done = done.clone();
    let server = std::thread::spawn(move || {
        while !server_done.load(Ordering::Relaxed) {
            if let Some(step) = server_queue.next(std::time::Duration::from_millis(50)) {
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

/// A Rust handler that does nothing: returns `{}` at once.
#[cfg(feature = "bench")]
pub(crate) struct RustNoop;

#[cfg(feature = "bench")]
impl Handler for RustNoop {
    fn call(
        &self,
        _ctx: StepContext,
        _cancel: CancellationToken,
    ) -> tasker_worker::handler::HandlerFuture {
        Box::pin(std::future::ready(Outcome::success(serde_json::json!({}))))
    }

    fn backend(&self) -> &'static str {
        "rust"
    }
}
