//! Calling a component: one attempt in a fresh store with limits, a deadline,
//! cancellation, captured stdout/stderr and a result cap; and classifying why
//! a call failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

use crate::contract::bindings::exports::tasker::handler::handler as wit;
use crate::error::{CallError, Limit};
use crate::host::WasmHost;
use crate::pipe::CappedPipe;
use crate::prepared::Prepared;
use crate::sink::{GuestLevel, GuestLog};
use crate::store::{Interrupt, Limiter, State};

/// What the guest returned.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestResult {
    /// `ok`: the step's result as JSON text.
    Ok(String),
    /// `err`: a failed attempt.
    Err {
        retryable: bool,
        message: String,
        retry_after_ms: Option<u64>,
    },
}

/// One call's output.
#[derive(Debug, Clone)]
pub struct CallOutput {
    pub result: GuestResult,
    /// Captured stdout/stderr (each capped at `max_output_bytes`).
    pub stdout: String,
    pub stderr: String,
    /// Bytes of stdout + stderr dropped by the cap.
    pub output_dropped: u64,
}

/// The context of one call (the contract's `step-context`), where its log
/// lines go and what its `trace.traceparent` answers.
#[derive(Debug, Clone, Default)]
pub struct CallInput {
    pub task_id: String,
    pub step_id: String,
    pub namespace: String,
    pub template_name: String,
    pub step_name: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub input: String,
    pub parent_results: String,
    pub config: String,
    /// The attempt span's W3C traceparent ("" when none).
    pub traceparent: String,
    /// Receives the guest's `log` lines and, after the call, its stdout
    /// (`info`) and stderr (`warn`) lines, whatever the call's outcome.
    pub log: Option<Arc<dyn GuestLog>>,
}
impl WasmHost {
    /// Runs one call in a fresh instance, stopped after `timeout` or when
    /// `cancel` becomes true. Blocks the calling thread.
    pub fn call(
        &self,
        prepared: &Prepared,
        input: &CallInput,
        timeout: Duration,
        cancel: Arc<AtomicBool>,
    ) -> Result<CallOutput, CallError> {
        let stdout = CappedPipe::new(self.config.max_output_bytes);
        let stderr = CappedPipe::new(self.config.max_output_bytes);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let c = &self.config;
        let state = State {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory: c.memory_limit_bytes,
                table_elements: c.table_elements_limit,
                instances: c.instances_limit,
                tables: c.tables_limit,
                memories: c.memories_limit,
                hit: None,
            },
            interrupted: None,
            deadline: Instant::now() + timeout,
            cancel,
            step_id: input.step_id.clone(),
            log_bytes: 0,
            max_log_bytes: c.max_output_bytes,
            log: input.log.clone(),
            traceparent: input.traceparent.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let s = ctx.data_mut();
            if s.cancel.load(Ordering::Relaxed) {
                s.interrupted = Some(Interrupt::Cancelled);
                return Ok(UpdateDeadline::Interrupt);
            }
            if Instant::now() >= s.deadline {
                s.interrupted = Some(Interrupt::Deadline);
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(1))
        });

        let ctx = wit::StepContext {
            task_id: input.task_id.clone(),
            step_id: input.step_id.clone(),
            namespace: input.namespace.clone(),
            template_name: input.template_name.clone(),
            step_name: input.step_name.clone(),
            attempt: input.attempt,
            max_attempts: input.max_attempts,
            input: input.input.clone(),
            parent_results: input.parent_results.clone(),
            config: input.config.clone(),
        };
        let outcome = prepared.pre.instantiate(&mut store).and_then(|instance| {
            instance
                .tasker_handler_handler()
                .call_handle(&mut store, &ctx)
        });
        let (out, out_dropped) = stdout.take();
        let (err, err_dropped) = stderr.take();
        if let Some(sink) = &input.log {
            sink.text(GuestLevel::Info, &out);
            sink.text(GuestLevel::Warn, &err);
            if out_dropped + err_dropped > 0 {
                sink.line(
                    GuestLevel::Warn,
                    &format!(
                        "{} bytes of stdout/stderr dropped (wasm.max_output_bytes = {})",
                        out_dropped + err_dropped,
                        c.max_output_bytes
                    ),
                );
            }
        }
        let result = match outcome {
            Ok(Ok(json)) => {
                if json.len() > c.max_result_bytes {
                    return Err(CallError::ResultTooLarge {
                        size: json.len(),
                        cap: c.max_result_bytes,
                    });
                }
                GuestResult::Ok(json)
            }
            Ok(Err(e)) => GuestResult::Err {
                retryable: matches!(e.kind, wit::ErrorKind::Retryable),
                message: e.message,
                retry_after_ms: e.retry_after_ms,
            },
            Err(e) => return Err(classify(e, store.data(), timeout)),
        };
        Ok(CallOutput {
            result,
            stdout: out,
            stderr: err,
            output_dropped: out_dropped + err_dropped,
        })
    }
}

fn classify(e: wasmtime::Error, state: &State, timeout: Duration) -> CallError {
    match state.interrupted {
        Some(Interrupt::Deadline) => return CallError::Deadline(timeout),
        Some(Interrupt::Cancelled) => return CallError::Cancelled,
        None => {}
    }
    if let Some((limit, detail)) = &state.limiter.hit {
        return CallError::Limit {
            limit: *limit,
            detail: detail.clone(),
        };
    }
    let text = format!("{e:#}");
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return CallError::Capacity(text);
    }
    if text.contains("resource limit exceeded") {
        return CallError::Limit {
            limit: Limit::Instances,
            detail: text,
        };
    }
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return CallError::Trap(format!("the guest called exit({})", exit.0));
    }
    match e.downcast_ref::<Trap>() {
        Some(trap) => CallError::Trap(format!("{trap}: {text}")),
        None => CallError::Trap(text),
    }
}
