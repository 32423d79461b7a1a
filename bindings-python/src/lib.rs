//! `tasker._tasker`: the native half of the Python package `tasker`.
//!
//! A thin layer over the safe Rust API of libtasker (`tasker-abi`, used as an
//! rlib): a worker served by pull ([`PyWorker`]), the steps it hands out
//! ([`PyStep`]), and a client ([`PyClient`]). JSON crosses the boundary as text;
//! the pure-Python layer (`python/tasker/`) turns it into Python objects, runs
//! the handlers and maps their exceptions to outcomes.
//!
//! Every call that may block (connecting, waiting for a step, stopping,
//! any database round trip) releases the GIL with `Python::detach`. Library
//! errors become Python exceptions carrying the `AbiError` message; nothing
//! panics across the boundary (pyo3 turns a panic into `PanicException`).

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use tasker::AbiError;
use tasker_model::step::log::LogLevel;
use tasker_model::step::{kind, Outcome, StepError};
use tasker_store::task::NewTask;

mod bench;
mod engine_log;

pyo3::create_exception!(
    _tasker,
    TaskerError,
    PyException,
    "An error of the tasker library (database, configuration, bad argument, ...)."
);
pyo3::create_exception!(
    _tasker,
    TaskTimeoutError,
    TaskerError,
    "Waiting for a task took longer than the timeout; the message names its state."
);
pyo3::create_exception!(
    _tasker,
    WorkerStoppedError,
    TaskerError,
    "The worker has stopped: no more steps will come."
);
pyo3::create_exception!(
    _tasker,
    NotFoundError,
    TaskerError,
    "The task, template or namespace asked for does not exist."
);
pyo3::create_exception!(
    _tasker,
    StepGoneError,
    TaskerError,
    "The worker no longer waits for this step; the outcome was discarded."
);

/// An `AbiError` as the matching Python exception.
fn to_py(e: AbiError) -> PyErr {
    let message = e.to_string();
    match e {
        AbiError::Timeout(_) => TaskTimeoutError::new_err(message),
        AbiError::Stopped => WorkerStoppedError::new_err(message),
        AbiError::NotFound(_) => NotFoundError::new_err(message),
        AbiError::StepGone => StepGoneError::new_err(message),
        _ => TaskerError::new_err(message),
    }
}

fn seconds(timeout: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(timeout).map_err(|_| {
        TaskerError::new_err(format!(
            "{what} must be a number of seconds >= 0, got {timeout}"
        ))
    })
}

/// JSON text from Python (`json.dumps`), refused with a `TaskerError` naming
/// the value's path when it holds what tasker cannot store exactly (an
/// integer beyond 64 bits, NaN, ...).
fn parse_json(text: &str, what: &'static str) -> PyResult<serde_json::Value> {
    tasker::handler::json_exact(text, what).map_err(to_py)
}

/// Loads a configuration (TOML over the built-in defaults, and a database URL
/// that wins over `database.url`), and sets `worker.concurrency` when given.
fn load_config(
    toml: Option<&str>,
    database_url: Option<&str>,
    concurrency: Option<u32>,
) -> PyResult<tasker_config::TaskerConfig> {
    let mut config = tasker::worker::load_config(toml, database_url).map_err(to_py)?;
    if let Some(n) = concurrency {
        if n == 0 {
            return Err(TaskerError::new_err("concurrency must be at least 1"));
        }
        config.worker.concurrency = n;
    }
    Ok(config)
}

/// A worker host whose steps are served by pull (`next_step`).
#[pyclass(frozen, module = "tasker._tasker", name = "Worker")]
struct PyWorker {
    inner: Arc<tasker::Worker>,
}

#[pymethods]
impl PyWorker {
    #[new]
    #[pyo3(signature = (config=None, database_url=None, concurrency=None))]
    fn new(
        config: Option<String>,
        database_url: Option<String>,
        concurrency: Option<u32>,
    ) -> PyResult<Self> {
        let mut config = load_config(config.as_deref(), database_url.as_deref(), concurrency)?;
        // The Python `Worker(namespaces=...)` says which namespaces it serves.
        config.worker.namespaces.clear();
        Ok(PyWorker {
            inner: Arc::new(tasker::Worker::new(config)),
        })
    }

    /// `worker.concurrency` in effect: at most this many steps run at once.
    #[getter]
    fn concurrency(&self) -> u32 {
        self.inner.config().worker.concurrency
    }

    fn add_namespace(&self, namespace: &str) -> PyResult<()> {
        self.inner.add_namespace(namespace).map_err(to_py)
    }

    fn set_orchestrate(&self, on: bool) -> PyResult<()> {
        self.inner.set_orchestrate(on).map_err(to_py)
    }

    /// Serves pool `pool` (a step queue templates route steps to) too.
    fn add_pool(&self, pool: &str) -> PyResult<()> {
        self.inner.add_pool(pool).map_err(to_py)
    }

    /// The runtime and version the worker registry shows.
    fn set_runtime(&self, runtime: &str, version: &str) -> PyResult<()> {
        self.inner.set_runtime(runtime, version).map_err(to_py)
    }

    /// Serves handler `name` by pull.
    fn register(&self, name: &str) -> PyResult<()> {
        self.inner.register_pull(name).map_err(to_py)
    }

    /// Serves handler `name` with a no-op Rust handler (returns `{}`): the
    /// baseline of the end-to-end benchmark (`bench` feature only).
    #[cfg(feature = "bench")]
    fn register_rust_noop(&self, name: &str) -> PyResult<()> {
        self.inner
            .register_push(name, Arc::new(bench::RustNoop))
            .map_err(to_py)
    }

    /// Connects (migrating the database) and starts serving. Blocks, without the GIL.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let w = self.inner.clone();
        py.detach(move || w.start()).map_err(to_py)
    }

    /// The next step, waiting up to `timeout` seconds without the GIL; `None`
    /// when none came. Raises `WorkerStoppedError` once stopped and drained.
    fn next_step(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<PyStep>> {
        let timeout = seconds(timeout, "timeout")?;
        let w = self.inner.clone();
        let step = py.detach(move || w.next_step(timeout)).map_err(to_py)?;
        Ok(step.map(|inner| PyStep { inner }))
    }

    /// Stops serving; steps already handed out must still be completed (by
    /// other threads) within the shutdown grace. Blocks, without the GIL.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let w = self.inner.clone();
        py.detach(move || w.stop()).map_err(to_py)
    }

    fn is_running(&self) -> bool {
        self.inner.is_running()
    }
}

impl Drop for PyWorker {
    fn drop(&mut self) {
        // Stopping blocks: never while holding the GIL, which the threads
        // completing steps may need.
        if self.inner.is_running() {
            let w = self.inner.clone();
            Python::attach(|py| py.detach(move || drop(w.stop())));
        }
    }
}

/// One attempt of one step, handed out by `Worker.next_step`. Give it one
/// outcome (`succeed` or `fail`); dropped without one, the attempt fails as
/// retryable.
#[pyclass(frozen, module = "tasker._tasker", name = "Step")]
struct PyStep {
    inner: Arc<tasker::StepHandle>,
}

#[pymethods]
impl PyStep {
    /// The step's context as JSON text (task_id, step_id, namespace, template,
    /// step_name, handler, attempt, max_attempts, input, parent_results,
    /// config, timeout_seconds, and traceparent when the worker traces).
    fn context_json(&self) -> String {
        self.inner.context_json().to_string_lossy().into_owned()
    }

    /// The handler name (without parsing the whole context).
    #[getter]
    fn handler(&self) -> &str {
        &self.inner.context().handler
    }

    /// The attempt's W3C `traceparent` (`00-<trace id>-<span id>-<flags>`),
    /// `None` when the worker does not trace.
    #[getter]
    fn traceparent(&self) -> Option<&str> {
        self.inner.traceparent()
    }

    /// Appends a line to the attempt's log at `level` (`error`, `warn` or
    /// `warning`, `info`, `debug`, `trace`; `critical` counts as `error`).
    /// Never blocks for long: past the per-attempt caps lines are dropped.
    fn log(&self, level: &str, message: &str) -> PyResult<()> {
        let level: LogLevel = level.parse().map_err(TaskerError::new_err)?;
        self.inner.log(level, message);
        Ok(())
    }

    /// True once the worker no longer wants this step's outcome.
    fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    fn is_completed(&self) -> bool {
        self.inner.is_completed()
    }

    /// Completes the step with a result given as JSON text. `None` when it
    /// did; when the text cannot be stored as it is (not JSON, an integer
    /// beyond 64 bits, NaN, ...) the step fails instead (kind `result`, not
    /// retried) and the message naming the value's path is returned.
    fn succeed(&self, result_json: &str) -> PyResult<Option<String>> {
        self.inner.succeed_or_refuse(result_json).map_err(to_py)
    }

    /// Fails the attempt with error kind `kind` (one of the `KIND_*`
    /// constants; default `handler`). `retry_after_ms` overrides the retry
    /// policy's delay.
    #[pyo3(signature = (message, retryable, kind=None, retry_after_ms=None))]
    fn fail(
        &self,
        message: String,
        retryable: bool,
        kind: Option<&str>,
        retry_after_ms: Option<u64>,
    ) -> PyResult<()> {
        self.inner
            .complete(Outcome::Failure(StepError {
                message,
                retryable,
                retry_after_ms,
                kind: kind.unwrap_or(kind::HANDLER).to_string(),
            }))
            .map_err(to_py)
    }
}

/// A client over the database: templates, tasks, waiting.
#[pyclass(frozen, module = "tasker._tasker", name = "Client")]
struct PyClient {
    inner: Arc<tasker::DatabaseClient>,
}

#[pymethods]
impl PyClient {
    #[new]
    #[pyo3(signature = (config=None, database_url=None))]
    fn new(py: Python<'_>, config: Option<String>, database_url: Option<String>) -> PyResult<Self> {
        let config = load_config(config.as_deref(), database_url.as_deref(), None)?;
        let inner = py
            .detach(move || tasker::DatabaseClient::new(&config))
            .map_err(to_py)?;
        Ok(PyClient {
            inner: Arc::new(inner),
        })
    }

    /// Registers a template (YAML or JSON text); returns `namespace/name/version`.
    fn register_template(&self, py: Python<'_>, text: String) -> PyResult<String> {
        let c = self.inner.clone();
        py.detach(move || c.register_template(&text)).map_err(to_py)
    }

    /// Creates a task; returns `(task_id, created)` (`created` is false when an
    /// idempotency key matched an existing task).
    // The Python signature: one argument per task field.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (namespace, name, context_json, version=None, idempotency_key=None, priority=0))]
    fn create_task(
        &self,
        py: Python<'_>,
        namespace: String,
        name: String,
        context_json: &str,
        version: Option<String>,
        idempotency_key: Option<String>,
        priority: i32,
    ) -> PyResult<(String, bool)> {
        let request = NewTask {
            namespace,
            name,
            version,
            context: parse_json(context_json, "context")?,
            priority,
            idempotency_key,
            traceparent: None,
        };
        let c = self.inner.clone();
        let created = py.detach(move || c.create_task(&request)).map_err(to_py)?;
        Ok((created.task_id.to_string(), created.created))
    }

    /// Creates the tasks of `tasks_json` (a JSON array of task objects:
    /// namespace, name, context, version, idempotency_key, priority) in one
    /// transaction, all or none; returns `(task_id, created)` per task.
    fn create_tasks(&self, py: Python<'_>, tasks_json: String) -> PyResult<Vec<(String, bool)>> {
        let c = self.inner.clone();
        let created = py
            .detach(move || c.create_tasks_json(&tasks_json))
            .map_err(to_py)?;
        Ok(created
            .into_iter()
            .map(|c| (c.task_id.to_string(), c.created))
            .collect())
    }

    /// The task with its steps and edges, as JSON text.
    fn get_task_json(&self, py: Python<'_>, task_id: &str) -> PyResult<String> {
        let id = task_uuid(task_id)?;
        let c = self.inner.clone();
        let task = py.detach(move || c.get_task(id)).map_err(to_py)?;
        Ok(task.to_string())
    }

    /// Waits up to `timeout` seconds for the task to settle; returns its state.
    fn wait(&self, py: Python<'_>, task_id: &str, timeout: f64) -> PyResult<String> {
        let id = task_uuid(task_id)?;
        let timeout = seconds(timeout, "timeout")?;
        let c = self.inner.clone();
        let state = py.detach(move || c.wait_task(id, timeout)).map_err(to_py)?;
        Ok(state.as_str().to_string())
    }
}

fn task_uuid(task_id: &str) -> PyResult<uuid::Uuid> {
    uuid::Uuid::parse_str(task_id)
        .map_err(|e| TaskerError::new_err(format!("task id {task_id:?} is not a UUID: {e}")))
}

/// The version of libtasker's ABI this extension was built with.
#[pyfunction]
fn abi_version() -> u32 {
    tasker::TASKER_ABI_VERSION
}

#[pymodule]
fn _tasker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    tasker::set_host_language("python");
    m.add_class::<PyWorker>()?;
    m.add_class::<PyStep>()?;
    m.add_class::<PyClient>()?;
    m.add_class::<bench::BenchQueue>()?;
    m.add_function(wrap_pyfunction!(abi_version, m)?)?;
    engine_log::add(m)?;
    #[cfg(feature = "bench")]
    m.add_function(wrap_pyfunction!(bench::bench_rust_dispatch, m)?)?;
    m.add("TaskerError", py.get_type::<TaskerError>())?;
    m.add("TaskTimeoutError", py.get_type::<TaskTimeoutError>())?;
    m.add("WorkerStoppedError", py.get_type::<WorkerStoppedError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("StepGoneError", py.get_type::<StepGoneError>())?;
    // The error kinds (`docs/error-kinds.md`): KIND_HANDLER = "handler", ...
    for k in kind::ALL {
        m.add(format!("KIND_{}", k.to_ascii_uppercase()), *k)?;
    }
    Ok(())
}
