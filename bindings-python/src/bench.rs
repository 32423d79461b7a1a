//! In-process dispatch benchmark: the round trip of one step through the pull
//! contract, without the database (`tasker::bench::pull_round_trips`: a Rust
//! thread queues a step with `PullHandler::call` and waits for its outcome);
//! the step is taken with `PullQueue::next` and completed either by Python (the
//! package's real dispatch path, [`BenchQueue`]) or by a Rust no-op handler
//! ([`bench_rust_dispatch`]). Latencies are per step, in nanoseconds.

use pyo3::prelude::*;
use tasker::step::PullQueue;
use tasker_worker::handler::{Handler, HandlerFuture};
use tasker_model::step::{Outcome, StepContext};
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

    /// Queues `n` steps for handler `handler`, one at a time, and returns each
    /// one's round trip in nanoseconds. Another thread must serve them.
    fn run(&self, py: Python<'_>, n: usize, handler: String) -> PyResult<Vec<u64>> {
        let queue = self.queue.clone();
        py.detach(move || tasker::bench::pull_round_trips(&queue, n, &handler))
            .map_err(TaskerError::new_err)
    }
}

/// The same round trip with a Rust no-op handler on a Rust thread.
#[pyfunction]
pub(crate) fn bench_rust_dispatch(py: Python<'_>, n: usize) -> PyResult<Vec<u64>> {
    py.detach(move || tasker::bench::rust_pull_round_trips(n))
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
