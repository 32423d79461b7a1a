//! The per-call store state: the denying WASI context, the store limits that
//! remember which one was hit, deadline/cancellation bookkeeping and the
//! contract's imports: `log` (each line to the call's [`GuestLog`], and to
//! `tracing` up to a cap) and `trace` (the attempt's `traceparent`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::contract::bindings::tasker::handler::{log, trace};
use crate::error::Limit;
use crate::sink::{GuestLevel, GuestLog};

/// Per-store state.
pub(crate) struct State {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) interrupted: Option<Interrupt>,
    pub(crate) deadline: Instant,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) step_id: String,
    /// Bytes of `log` messages sent to `tracing` so far, and the cap.
    pub(crate) log_bytes: usize,
    pub(crate) max_log_bytes: usize,
    /// Where every `log` line goes (the attempt's log), if anywhere.
    pub(crate) log: Option<Arc<dyn GuestLog>>,
    /// The attempt span's W3C traceparent, "" when none.
    pub(crate) traceparent: String,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Interrupt {
    Deadline,
    Cancelled,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for State {
    fn log(&mut self, level: log::Level, message: String) {
        if let Some(sink) = &self.log {
            let level = match level {
                log::Level::Trace => GuestLevel::Trace,
                log::Level::Debug => GuestLevel::Debug,
                log::Level::Info => GuestLevel::Info,
                log::Level::Warn => GuestLevel::Warn,
                log::Level::Error => GuestLevel::Error,
            };
            sink.line(level, &message);
        }
        if self.log_bytes >= self.max_log_bytes {
            return;
        }
        self.log_bytes += message.len();
        let step_id = self.step_id.as_str();
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "tasker::wasm::guest", step_id, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "tasker::wasm::guest", step_id, "{message}")
            }
            log::Level::Info => tracing::info!(target: "tasker::wasm::guest", step_id, "{message}"),
            log::Level::Warn => tracing::warn!(target: "tasker::wasm::guest", step_id, "{message}"),
            log::Level::Error => {
                tracing::error!(target: "tasker::wasm::guest", step_id, "{message}")
            }
        }
    }
}

impl trace::Host for State {
    fn traceparent(&mut self) -> String {
        self.traceparent.clone()
    }
}

/// Store limits that remember which one was hit.
pub(crate) struct Limiter {
    pub(crate) memory: usize,
    pub(crate) table_elements: usize,
    pub(crate) instances: usize,
    pub(crate) tables: usize,
    pub(crate) memories: usize,
    pub(crate) hit: Option<(Limit, String)>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory || maximum.is_some_and(|m| desired > m) {
            let detail = format!(
                "a memory grew from {current} to {desired} bytes; the limit is {} bytes",
                self.memory
            );
            self.hit = Some((Limit::Memory, detail.clone()));
            return Err(wasmtime::Error::msg(detail));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements || maximum.is_some_and(|m| desired > m) {
            let detail = format!(
                "a table grew from {current} to {desired} elements; the limit is {}",
                self.table_elements
            );
            self.hit = Some((Limit::Table, detail.clone()));
            return Err(wasmtime::Error::msg(detail));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }
    fn tables(&self) -> usize {
        self.tables
    }
    fn memories(&self) -> usize {
        self.memories
    }
}
