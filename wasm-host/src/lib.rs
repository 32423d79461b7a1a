//! tasker's sandboxed WebAssembly component host.
//!
//! A [`WasmHost`] holds one wasmtime [`Engine`] (pooling allocator, epoch
//! interruption driven by a ticker thread) and runs components that implement
//! the `tasker:handler@0.1.0` contract (`sdk-wit/wit/handler.wit`):
//!
//! - [`WasmHost::validate`] checks uploaded bytes: a component, importing
//!   nothing outside [`allowed_import`], exporting the contract's `handler`,
//!   and compiling (the compiled form goes to the disk cache).
//! - [`WasmHost::cached`] / [`WasmHost::load`] give a [`Prepared`] component
//!   (an `InstancePre`), cached in memory by sha256 and compiled code cached
//!   on disk by sha256 + engine fingerprint, so a restart does not recompile.
//! - [`WasmHost::call`] runs one attempt in a fresh store with memory, table
//!   and instance limits, a deadline, captured stdout/stderr and a result cap.
//!
//! This crate knows nothing of PostgreSQL or the engine. Calls block: run them
//! on a blocking thread (`tokio::task::spawn_blocking`).

mod pipe;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    Trap, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use pipe::CappedPipe;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk-wit/wit",
        world: "step-handler",
    });
}

use bindings::exports::tasker::handler::handler as wit;
use bindings::tasker::handler::log;

/// The contract version this host implements (the WIT package version).
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The contract's export a component must provide.
pub const HANDLER_EXPORT: &str = "tasker:handler/handler@0.1.0";

/// Limits and sizes of a [`WasmHost`]. Every field is a config key
/// (`[wasm]` in the engine's configuration).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Largest linear memory of one instance, in bytes.
    pub memory_limit_bytes: usize,
    /// Most elements of one table.
    pub table_elements_limit: usize,
    /// Most core instances per call (componentize-py guests need ≥ 100).
    pub instances_limit: usize,
    /// Most tables per call.
    pub tables_limit: usize,
    /// Most linear memories per call.
    pub memories_limit: usize,
    /// Largest result (JSON text) a guest may return, in bytes.
    pub max_result_bytes: usize,
    /// Guest stdout and stderr kept per call, each, in bytes; the rest is dropped.
    pub max_output_bytes: usize,
    /// Epoch tick: the granularity of deadlines and cancellation.
    pub epoch_tick: Duration,
    /// Calls running at once (the pooling allocator's slots).
    pub max_concurrent_calls: u32,
    /// Where compiled components are cached; `None`: no disk cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            memory_limit_bytes: 256 << 20,
            table_elements_limit: 100_000,
            instances_limit: 200,
            tables_limit: 200,
            memories_limit: 20,
            max_result_bytes: 16 << 20,
            max_output_bytes: 64 << 10,
            epoch_tick: Duration::from_millis(10),
            max_concurrent_calls: 32,
            cache_dir: None,
        }
    }
}

/// Why a component was refused or could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component (a core module or other bytes)")]
    NotAComponent,
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error("the component imports `{name}`, which is outside the contract (allowed: tasker:handler/log@0.1.x and wasi:{{io,clocks,random,cli,filesystem,sockets}}/*@0.2.x)")]
    ForbiddenImport { name: String },
    #[error("the component does not export `{HANDLER_EXPORT}` with the contract's types: {0}")]
    Export(String),
    #[error("the component's imports cannot be linked: {0}")]
    Link(String),
    #[error("host setup failed: {0}")]
    Host(String),
}

/// Which store limit a guest hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Memory,
    Table,
    Instances,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Memory => "memory",
            Limit::Table => "table",
            Limit::Instances => "instances",
        })
    }
}

/// Why a call did not return a result. Each variant is one distinct cause.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The per-call deadline passed (the epoch interrupt stopped the guest).
    #[error("the guest ran past its deadline of {0:?} and was interrupted")]
    Deadline(Duration),
    /// The call was cancelled by the caller.
    #[error("the call was cancelled")]
    Cancelled,
    /// A store limit refused a request.
    #[error("the guest hit the {limit} limit: {detail}")]
    Limit { limit: Limit, detail: String },
    /// The result is larger than `max_result_bytes`.
    #[error("the guest returned {size} bytes, more than the cap of {cap} bytes")]
    ResultTooLarge { size: usize, cap: usize },
    /// The guest trapped (a panic, `unreachable`, out-of-bounds access, exit, ...).
    #[error("the guest trapped: {0}")]
    Trap(String),
    /// The host has no free instance slot right now (retry later).
    #[error("no free instance slot: {0}")]
    Capacity(String),
}

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

/// The context of one call (the contract's `step-context`).
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
}

/// Facts about a validated component.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    pub sha256: String,
    pub size: usize,
    pub contract_version: String,
    /// Every import name, sorted.
    pub imports: Vec<String>,
}

/// A component ready to instantiate.
pub struct Prepared {
    sha256: String,
    pre: bindings::StepHandlerPre<State>,
}

impl Prepared {
    /// The component's sha256 (hex).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// Where a component came from on [`WasmHost::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadedFrom {
    Memory,
    Disk,
    Compiled,
}

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether an import name is allowed: the contract's `log` (0.1.x) and the
/// WASI 0.2 interfaces language runtimes import (`io`, `clocks`, `random`,
/// `cli`, `filesystem`, `sockets`). WASI is linked but grants nothing: no
/// preopened directories, no network, no environment, no arguments, empty stdin.
pub fn allowed_import(name: &str) -> bool {
    if let Some(v) = name.strip_prefix("tasker:handler/log@") {
        return v.starts_with("0.1.");
    }
    let Some(rest) = name.strip_prefix("wasi:") else {
        return false;
    };
    let Some((package, versioned)) = rest.split_once('/') else {
        return false;
    };
    let Some((_, version)) = versioned.split_once('@') else {
        return false;
    };
    matches!(
        package,
        "io" | "clocks" | "random" | "cli" | "filesystem" | "sockets"
    ) && version.starts_with("0.2.")
}

/// Per-store state.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    interrupted: Option<Interrupt>,
    deadline: Instant,
    cancel: Arc<AtomicBool>,
    step_id: String,
    log_bytes: usize,
    max_log_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
enum Interrupt {
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

/// Store limits that remember which one was hit.
struct Limiter {
    memory: usize,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
    hit: Option<(Limit, String)>,
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

/// The component host. Cheap to share (`Arc`); every method takes `&self`.
pub struct WasmHost {
    engine: Engine,
    linker: Linker<State>,
    config: HostConfig,
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    fingerprint: String,
    stop: Arc<AtomicBool>,
}

impl Drop for WasmHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl WasmHost {
    /// Makes the engine (pooling allocator, epoch interruption), the linker
    /// (contract + denying WASI) and starts the epoch ticker thread.
    pub fn new(config: HostConfig) -> Result<WasmHost, LoadError> {
        let host_err = |e: wasmtime::Error| LoadError::Host(format!("{e:#}"));
        let mut cfg = Config::new();
        cfg.epoch_interruption(true);
        let slots = config.max_concurrent_calls.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(config.instances_limit as u32))
            .total_memories(slots.saturating_mul(config.memories_limit as u32))
            .total_tables(slots.saturating_mul(config.tables_limit as u32))
            .total_stacks(slots)
            .max_core_instances_per_component(config.instances_limit as u32)
            .max_memories_per_component(config.memories_limit as u32)
            .max_tables_per_component(config.tables_limit as u32)
            .max_memory_size(config.memory_limit_bytes)
            .table_elements(config.table_elements_limit)
            .max_core_instance_size(16 << 20)
            .max_component_instance_size(16 << 20);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).map_err(host_err)?;

        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(host_err)?;
        bindings::StepHandler::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(host_err)?;

        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            format!("{:016x}", h.finish())
        };
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| LoadError::Host(format!("cache dir {}: {e}", dir.display())))?;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, ticker_stop, tick) = (engine.clone(), stop.clone(), config.epoch_tick);
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| LoadError::Host(format!("epoch thread: {e}")))?;

        Ok(WasmHost {
            engine,
            linker,
            config,
            prepared: Mutex::new(HashMap::new()),
            fingerprint,
            stop,
        })
    }

    /// The host's configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// A fingerprint of the engine's compilation settings (part of the disk cache key).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        let dir = self.config.cache_dir.as_ref()?;
        // Only a hex digest becomes a file name.
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(dir.join(format!("{sha256}-{}.cwasm", self.fingerprint)))
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Component, LoadError> {
        if !wasmparser_is_component(bytes) {
            return Err(LoadError::NotAComponent);
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        if let Some(path) = self.cache_path(sha256) {
            if let Ok(serialized) = component.serialize() {
                write_atomically(&path, &serialized);
            }
        }
        Ok(component)
    }

    fn check(&self, component: &Component) -> Result<(Vec<String>, Prepared), LoadError> {
        let ty = component.component_type();
        let mut imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        imports.sort();
        if let Some(bad) = imports.iter().find(|n| !allowed_import(n)) {
            return Err(LoadError::ForbiddenImport { name: bad.clone() });
        }
        if ty.get_export(&self.engine, HANDLER_EXPORT).is_none() {
            let exports: Vec<&str> = ty.exports(&self.engine).map(|(n, _)| n).collect();
            return Err(LoadError::Export(format!(
                "it exports [{}]",
                exports.join(", ")
            )));
        }
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre =
            bindings::StepHandlerPre::new(pre).map_err(|e| LoadError::Export(format!("{e:#}")))?;
        Ok((
            imports,
            Prepared {
                sha256: String::new(),
                pre,
            },
        ))
    }

    /// Validates an upload: a component, only allowed imports, the contract's
    /// export, and it compiles. The compiled form is cached (memory and disk).
    pub fn validate(&self, bytes: &[u8]) -> Result<ComponentInfo, LoadError> {
        let sha256 = sha256_hex(bytes);
        let component = self.compile(bytes, &sha256)?;
        let (imports, mut prepared) = self.check(&component)?;
        prepared.sha256 = sha256.clone();
        self.remember(Arc::new(prepared));
        Ok(ComponentInfo {
            sha256,
            size: bytes.len(),
            contract_version: CONTRACT_VERSION.to_string(),
            imports,
        })
    }

    fn remember(&self, prepared: Arc<Prepared>) {
        if let Ok(mut m) = self.prepared.lock() {
            m.insert(prepared.sha256.clone(), prepared);
        }
    }

    /// The prepared component for `sha256` from memory, else from the disk
    /// cache (no bytes needed), else `None`.
    pub fn cached(&self, sha256: &str) -> Option<(Arc<Prepared>, LoadedFrom)> {
        if let Some(p) = self.prepared.lock().ok()?.get(sha256).cloned() {
            return Some((p, LoadedFrom::Memory));
        }
        let path = self.cache_path(sha256)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the cache directory is the worker's own (config says so);
        // its files are written only by `compile` above, atomically, for this
        // engine fingerprint. A file that fails to load is removed.
        let component = match unsafe { Component::deserialize_file(&self.engine, &path) } {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "dropping an unusable cached component");
                let _ = std::fs::remove_file(&path);
                return None;
            }
        };
        let (_, mut prepared) = self.check(&component).ok()?;
        prepared.sha256 = sha256.to_string();
        let prepared = Arc::new(prepared);
        self.remember(prepared.clone());
        Some((prepared, LoadedFrom::Disk))
    }

    /// The prepared component for `bytes` (whose hash must be `sha256`):
    /// from memory or disk if cached, else compiled (and cached).
    pub fn load(
        &self,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(Arc<Prepared>, LoadedFrom), LoadError> {
        if let Some(hit) = self.cached(sha256) {
            return Ok(hit);
        }
        let actual = sha256_hex(bytes);
        if actual != sha256 {
            return Err(LoadError::Host(format!(
                "bytes hash to {actual}, expected {sha256}"
            )));
        }
        let component = self.compile(bytes, sha256)?;
        let (_, mut prepared) = self.check(&component)?;
        prepared.sha256 = sha256.to_string();
        let prepared = Arc::new(prepared);
        self.remember(prepared.clone());
        Ok((prepared, LoadedFrom::Compiled))
    }

    /// Forgets every in-memory prepared component (the disk cache stays).
    pub fn clear_memory_cache(&self) {
        if let Ok(mut m) = self.prepared.lock() {
            m.clear();
        }
    }

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

/// Whether `bytes` start with the component-model preamble (layer 1), as
/// opposed to a core module (layer 0).
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "could not write the compiled-component cache");
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_allow_list() {
        assert!(allowed_import("tasker:handler/log@0.1.0"));
        assert!(allowed_import("tasker:handler/log@0.1.3"));
        assert!(!allowed_import("tasker:handler/log@0.2.0"));
        assert!(allowed_import("wasi:cli/environment@0.2.6"));
        assert!(allowed_import("wasi:io/streams@0.2.0"));
        assert!(!allowed_import("wasi:http/outgoing-handler@0.2.0"));
        assert!(!allowed_import("wasi:cli/environment@0.3.0"));
        assert!(!allowed_import("acme:exfil/net@0.1.0"));
        assert!(!allowed_import("env"));
    }

    #[test]
    fn core_modules_are_not_components() {
        let host = WasmHost::new(HostConfig::default()).expect("host");
        // The smallest core module: magic + version 1.
        let module = b"\0asm\x01\0\0\0";
        assert!(matches!(
            host.validate(module),
            Err(LoadError::NotAComponent)
        ));
        assert!(matches!(
            host.validate(b"hello"),
            Err(LoadError::NotAComponent)
        ));
    }
}
