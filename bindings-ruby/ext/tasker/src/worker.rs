//! `Tasker::Native::Worker` and `Tasker::Native::Step`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnus::prelude::*;
use magnus::{function, method, Error, RHash, RModule, Ruby, Value};
use tasker::{AbiError, StepHandle};
use tasker_model::step::log::LogLevel;
use tasker_model::step::{Outcome, StepError};

use crate::nogvl::{self, POLL};
use crate::{abi_error, invalid};

/// A worker host serving its handlers by pull.
#[magnus::wrap(class = "Tasker::Native::Worker", free_immediately, size)]
pub struct RbWorker(Option<Arc<tasker::Worker>>);

impl Drop for RbWorker {
    fn drop(&mut self) {
        // Freed by the GC, with the GVL held: stopping may wait for steps
        // that Ruby threads must finish, so stop (if still running) elsewhere.
        if let Some(worker) = self.0.take() {
            if worker.is_running() {
                let _ = std::thread::Builder::new()
                    .name("tasker-rb-free".into())
                    .spawn(move || drop(worker));
            }
        }
    }
}

/// Seconds (a Ruby Float) as a duration; negative or NaN counts as zero.
pub(crate) fn seconds(ruby: &Ruby, s: f64) -> Result<Duration, Error> {
    if s.is_nan() || s < 0.0 {
        return Ok(Duration::ZERO);
    }
    Duration::try_from_secs_f64(s).map_err(|e| invalid(ruby, format!("bad timeout {s}: {e}")))
}

/// A configuration from TOML text and a database URL (both optional).
pub(crate) fn config(
    ruby: &Ruby,
    toml: Option<String>,
    database_url: Option<String>,
) -> Result<tasker_config::TaskerConfig, Error> {
    tasker::worker::load_config(toml.as_deref(), database_url.as_deref())
        .map_err(|e| abi_error(ruby, e))
}

impl RbWorker {
    fn new(
        ruby: &Ruby,
        toml: Option<String>,
        database_url: Option<String>,
        concurrency: Option<u32>,
        namespaces: Vec<String>,
    ) -> Result<Self, Error> {
        let mut config = config(ruby, toml, database_url)?;
        // Namespaces given in Ruby replace the configured ones (the defaults
        // name "default", which a Ruby worker rarely serves); a worker given
        // only pools (`Tasker::Worker.new(pools: [...])`) serves only those.
        config.worker.namespaces = namespaces;
        if let Some(n) = concurrency {
            if n == 0 {
                return Err(invalid(ruby, "threads must be at least 1".into()));
            }
            config.worker.concurrency = n;
        }
        Ok(RbWorker(Some(Arc::new(tasker::Worker::new(config)))))
    }

    fn worker(&self, ruby: &Ruby) -> Result<&Arc<tasker::Worker>, Error> {
        // Only `Drop` takes it, so this always finds it.
        self.0
            .as_ref()
            .ok_or_else(|| Error::new(ruby.exception_runtime_error(), "the worker was freed"))
    }

    fn add_namespace(ruby: &Ruby, rb_self: &Self, namespace: String) -> Result<(), Error> {
        rb_self
            .worker(ruby)?
            .add_namespace(&namespace)
            .map_err(|e| abi_error(ruby, e))
    }

    fn add_pool(ruby: &Ruby, rb_self: &Self, pool: String) -> Result<(), Error> {
        rb_self
            .worker(ruby)?
            .add_pool(&pool)
            .map_err(|e| abi_error(ruby, e))
    }

    fn set_runtime(
        ruby: &Ruby,
        rb_self: &Self,
        runtime: String,
        version: String,
    ) -> Result<(), Error> {
        rb_self
            .worker(ruby)?
            .set_runtime(&runtime, &version)
            .map_err(|e| abi_error(ruby, e))
    }

    fn set_orchestrate(ruby: &Ruby, rb_self: &Self, on: bool) -> Result<(), Error> {
        rb_self
            .worker(ruby)?
            .set_orchestrate(on)
            .map_err(|e| abi_error(ruby, e))
    }

    fn register_pull(ruby: &Ruby, rb_self: &Self, name: String) -> Result<(), Error> {
        rb_self
            .worker(ruby)?
            .register_pull(&name)
            .map_err(|e| abi_error(ruby, e))
    }

    fn concurrency(ruby: &Ruby, rb_self: &Self) -> Result<u32, Error> {
        Ok(rb_self.worker(ruby)?.config().worker.concurrency)
    }

    fn start(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        let worker = rb_self.worker(ruby)?.clone();
        nogvl::blocking(ruby, move |_| worker.start())?.map_err(|e| abi_error(ruby, e))
    }

    /// The next step, waiting up to `timeout` seconds; nil when none came (or
    /// Ruby interrupted the wait). Raises `Tasker::StoppedError` once stopped
    /// and drained.
    fn next_step(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<Option<RbStep>, Error> {
        let worker = rb_self.worker(ruby)?.clone();
        let deadline = Instant::now() + seconds(ruby, timeout)?;
        let got = nogvl::without_gvl(ruby, move |interrupted| loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match worker.next_step(left.min(POLL)) {
                Ok(None) if !left.is_zero() && !interrupted.load(Ordering::SeqCst) => continue,
                other => return other,
            }
        })?;
        match got {
            Some(Ok(step)) => Ok(step.map(RbStep)),
            Some(Err(e)) => Err(abi_error(ruby, e)),
            None => {
                ruby.thread_check_ints()?;
                Ok(None)
            }
        }
    }

    fn stop(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        let worker = rb_self.worker(ruby)?.clone();
        nogvl::blocking(ruby, move |_| worker.stop())?.map_err(|e| abi_error(ruby, e))
    }

    fn is_running(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        Ok(rb_self.worker(ruby)?.is_running())
    }
}

/// One pulled step. Dropping it without an outcome fails the attempt as retryable.
#[magnus::wrap(class = "Tasker::Native::Step", free_immediately, size)]
pub struct RbStep(pub(crate) Arc<StepHandle>);

impl RbStep {
    /// The step's context as a Hash with string keys (built here, not
    /// through JSON text: parsing JSON in Ruby costs more than the rest of a
    /// dispatch).
    fn context(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let c = rb_self.0.context();
        let h = ruby.hash_new();
        h.aset("task_id", c.task_id.to_string())?;
        h.aset("step_id", c.step_id.to_string())?;
        h.aset("namespace", c.namespace.as_str())?;
        h.aset("template", c.template.as_str())?;
        h.aset("step_name", c.step_name.as_str())?;
        h.aset("handler", c.handler.as_str())?;
        h.aset("attempt", c.attempt)?;
        h.aset("max_attempts", c.max_attempts)?;
        h.aset("input", json_to_ruby(ruby, &c.input)?)?;
        let parents = ruby.hash_new();
        for (name, result) in &c.parent_results {
            parents.aset(name.as_str(), json_to_ruby(ruby, result)?)?;
        }
        h.aset("parent_results", parents)?;
        h.aset("config", json_to_ruby(ruby, &c.config)?)?;
        h.aset("timeout_seconds", c.timeout_seconds)?;
        if let Some(tp) = &c.traceparent {
            h.aset("traceparent", tp.as_str())?;
        }
        Ok(h)
    }

    fn context_json(&self) -> String {
        self.0.context_json().to_string_lossy().into_owned()
    }

    fn handler(&self) -> String {
        self.0.context().handler.clone()
    }

    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// The attempt's W3C `traceparent`, nil when the worker does not trace.
    fn traceparent(&self) -> Option<String> {
        self.0.traceparent().map(str::to_string)
    }

    /// Appends a line to the attempt's log at `level` (`error`, `fatal`,
    /// `warn`, `info`, `unknown`, `debug`, `trace`). Never blocks for long:
    /// past the per-attempt caps lines are dropped.
    fn log(ruby: &Ruby, rb_self: &Self, level: String, message: String) -> Result<(), Error> {
        let level: LogLevel = level.parse().map_err(|e: String| invalid(ruby, e))?;
        rb_self.0.log(level, message);
        Ok(())
    }

    fn is_completed(&self) -> bool {
        self.0.is_completed()
    }

    /// Completes the step with a result given as JSON text: nil when it did.
    /// Text that cannot be stored as it is (not JSON, an integer beyond 64
    /// bits, NaN, ...) fails the step instead (kind `result`, not retried)
    /// and the message, naming the value's path, is returned.
    fn succeed(ruby: &Ruby, rb_self: &Self, json: String) -> Result<Option<String>, Error> {
        // Sending on a oneshot channel never blocks: no need to release the GVL.
        rb_self
            .0
            .succeed_or_refuse(&json)
            .map_err(|e| abi_error(ruby, e))
    }

    /// Fails the attempt.
    fn fail(
        ruby: &Ruby,
        rb_self: &Self,
        message: String,
        retryable: bool,
        retry_after_ms: Option<u64>,
        kind: String,
    ) -> Result<(), Error> {
        let outcome = Outcome::Failure(StepError {
            message,
            retryable,
            retry_after_ms,
            kind,
        });
        complete(ruby, &rb_self.0, outcome)
    }
}

/// A JSON value as Ruby objects (Hash with string keys, Array, String,
/// Integer, Float, true/false, nil).
fn json_to_ruby(ruby: &Ruby, v: &serde_json::Value) -> Result<Value, Error> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => ruby.qnil().as_value(),
        J::Bool(true) => ruby.qtrue().as_value(),
        J::Bool(false) => ruby.qfalse().as_value(),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                ruby.integer_from_i64(i).as_value()
            } else if let Some(u) = n.as_u64() {
                ruby.integer_from_u64(u).as_value()
            } else {
                ruby.float_from_f64(n.as_f64().unwrap_or(f64::NAN))
                    .as_value()
            }
        }
        J::String(s) => ruby.str_new(s).as_value(),
        J::Array(items) => {
            let array = ruby.ary_new_capa(items.len());
            for item in items {
                array.push(json_to_ruby(ruby, item)?)?;
            }
            array.as_value()
        }
        J::Object(map) => {
            let hash = ruby.hash_new();
            for (key, item) in map {
                hash.aset(key.as_str(), json_to_ruby(ruby, item)?)?;
            }
            hash.as_value()
        }
    })
}

fn complete(ruby: &Ruby, step: &StepHandle, outcome: Outcome) -> Result<(), Error> {
    // Sending on a oneshot channel never blocks: no need to release the GVL.
    step.complete(outcome)
        .map_err(|e: AbiError| abi_error(ruby, e))
}

pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Worker", ruby.class_object())?;
    class.define_singleton_method("new", function!(RbWorker::new, 4))?;
    class.define_method("add_namespace", method!(RbWorker::add_namespace, 1))?;
    class.define_method("add_pool", method!(RbWorker::add_pool, 1))?;
    class.define_method("set_runtime", method!(RbWorker::set_runtime, 2))?;
    class.define_method("orchestrate=", method!(RbWorker::set_orchestrate, 1))?;
    class.define_method("register_pull", method!(RbWorker::register_pull, 1))?;
    class.define_method("concurrency", method!(RbWorker::concurrency, 0))?;
    class.define_method("start", method!(RbWorker::start, 0))?;
    class.define_method("next_step", method!(RbWorker::next_step, 1))?;
    class.define_method("stop", method!(RbWorker::stop, 0))?;
    class.define_method("running?", method!(RbWorker::is_running, 0))?;

    // The error kinds every runtime records (docs/error-kinds.md):
    // Tasker::Native::ErrorKind::HANDLER == "handler", ...
    let kinds = native.define_module("ErrorKind")?;
    for k in tasker_model::step::kind::ALL {
        kinds.const_set(k.to_ascii_uppercase(), *k)?;
    }

    let step = native.define_class("Step", ruby.class_object())?;
    step.undef_default_alloc_func();
    step.define_method("context", method!(RbStep::context, 0))?;
    step.define_method("context_json", method!(RbStep::context_json, 0))?;
    step.define_method("handler", method!(RbStep::handler, 0))?;
    step.define_method("cancelled?", method!(RbStep::is_cancelled, 0))?;
    step.define_method("traceparent", method!(RbStep::traceparent, 0))?;
    step.define_method("log", method!(RbStep::log, 2))?;
    step.define_method("completed?", method!(RbStep::is_completed, 0))?;
    step.define_method("succeed", method!(RbStep::succeed, 1))?;
    step.define_method("fail", method!(RbStep::fail, 4))?;
    Ok(())
}
