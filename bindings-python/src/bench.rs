//! In-process dispatch benchmark: the round trip of one step through the pull
//! contract, without the database. A Rust thread queues a step with
//! `PullHandler::call` and waits for its outcome; the step is taken with
//! `PullQueue::next` and completed either by Python (the package's real
//! dispatch path, [`BenchQueue`]) or by a Rust no-op handler
//! ([`bench_rust_dispatch`]). Latencies are per step, in nanoseconds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use tasker::step::{PullHandler, PullQueue};
use tasker_engine::handler::{Handler, HandlerFuture};
use tasker_engine::step::{Outcome, StepContext};
use tokio_util::sync::CancellationToken;

use crate::{PyStep, TaskerError};

fn sample_context(handler: &str) -> StepContext {
    StepContext {
        task_id: uuid::Uuid::now_v7(),
        step_id: uuid::Uuid::now_v7(),
        namespace: "bench".into(),
        template: "bench/noop/1.0.0".into(),
        step_name: "noop".into(),
        handler: handler.into(),
        attempt: 1,
        max_attempts: 3,
        input: serde_json::json!({ "value": 3 }),
        parent_results: BTreeMap::from([("parent".to_string(), serde_json::json!(9))]),
        config: serde_json::json!({ "op": "noop" }),
        timeout_seconds: 30,
    }
}

/// Queues `n` steps one after another and returns each one's round trip (ns),
/// the time from `PullHandler::call` until its outcome arrived.
fn drive(queue: &PullQueue, n: usize, handler: &str) -> Result<Vec<u64>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("starting the benchmark runtime: {e}"))?;
    let pull = PullHandler::new(queue.clone());
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let ctx = sample_context(handler);
        let started = Instant::now();
        let outcome = runtime.block_on(pull.call(ctx, CancellationToken::new()));
        latencies.push(started.elapsed().as_nanos() as u64);
        if let Outcome::Failure(e) = outcome {
            return Err(format!("a benchmark step failed: {}", e.message));
        }
    }
    Ok(latencies)
}

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

    /// Queues `n` steps for handler `handler`, one at a time, and returns each
    /// one's round trip in nanoseconds. Another thread must serve them.
    fn run(&self, py: Python<'_>, n: usize, handler: String) -> PyResult<Vec<u64>> {
        let queue = self.queue.clone();
        py.detach(move || drive(&queue, n, &handler))
            .map_err(TaskerError::new_err)
    }
}

/// The same round trip with a Rust no-op handler on a Rust thread.
#[pyfunction]
pub(crate) fn bench_rust_dispatch(py: Python<'_>, n: usize) -> PyResult<Vec<u64>> {
    py.detach(move || {
        let queue = PullQueue::new(1);
        let server_queue = queue.clone();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let server_done = done.clone();
        let server = std::thread::spawn(move || {
            while !server_done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(step) = server_queue.next(Duration::from_millis(50)) {
                    // The no-op handler: reads the context, returns an empty object.
                    let _ = &step.context().input;
                    let _ = step.complete(Outcome::success(serde_json::json!({})));
                }
            }
        });
        let result = drive(&queue, n, "noop");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = server.join();
        result
    })
    .map_err(TaskerError::new_err)
}

/// A Rust handler that does nothing: returns `{}` at once.
pub(crate) struct RustNoop;

impl Handler for RustNoop {
    fn call(&self, _ctx: StepContext, _cancel: CancellationToken) -> HandlerFuture {
        Box::pin(std::future::ready(Outcome::success(serde_json::json!({}))))
    }

    fn backend(&self) -> &'static str {
        "rust"
    }
}
