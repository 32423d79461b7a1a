//! The WASM backend: steps whose handler is an uploaded component.
//!
//! [`WasmSource`] answers every handler name the registry does not know with a
//! [`WasmHandler`] that, per attempt, looks up the step's component in
//! `tasker.handler_components` (the template's `handler.version`, else the
//! highest version: a new upload is used by the next step, no restart), gets
//! it from the host's caches (memory, then disk) or loads and compiles the
//! bytes from the database, and runs it on a blocking thread in a fresh
//! instance (`tasker-wasm-host`).
//!
//! Outcomes (error kinds from `tasker_model::step::kind`, the same as other
//! runtimes record where the situation is the same; `docs/error-kinds.md`):
//! the guest's `step-error` as it says (kind `handler`); a deadline hit is
//! kind `timeout` (retryable, as the step's policy says); an `ok` text that is
//! not JSON, or JSON tasker cannot store exactly (an integer beyond 64 bits,
//! `NaN`, ...), is `result`; a trap is `wasm_trap`, a limit hit `wasm_limit`,
//! an oversized result `wasm_result_too_large` (all permanent: the same input
//! fails the same way); no free instance slot is `wasm_capacity` (retryable);
//! no component is `no_handler`; a failed host thread is `internal`.
//!
//! The guest's `log` lines, and its stdout (`info`) and stderr (`warn`)
//! lines, go to the attempt's log ([`StepContext::log`]) whatever the
//! outcome; its `trace.traceparent` is the context's.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tasker_wasm_host::{
    CallError, CallInput, GuestLevel, GuestLog, GuestResult, HostConfig, LoadError, LoadedFrom,
    WasmHost,
};
use tokio_util::sync::CancellationToken;

use super::{Handler, HandlerFuture, HandlerSource};
use tasker_config::WasmConfig;
use tasker_model::step::log::{AttemptLog, LogLevel};
use tasker_model::step::{kind, parse_json_exact, Outcome, StepContext, StepError};

/// The host settings from `[wasm]`.
pub fn host_config(c: &WasmConfig) -> HostConfig {
    let cache_dir = match c.cache_dir.as_os_str().is_empty() {
        true => None,
        false => Some(
            match (c.cache_dir.strip_prefix("~"), std::env::var_os("HOME")) {
                (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => c.cache_dir.clone(),
            },
        ),
    };
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    HostConfig {
        memory_limit_bytes: size(c.memory_limit_bytes),
        table_elements_limit: c.table_elements_limit as usize,
        instances_limit: c.instances_limit as usize,
        tables_limit: c.tables_limit as usize,
        memories_limit: c.memories_limit as usize,
        max_result_bytes: size(c.max_result_bytes),
        max_output_bytes: size(c.max_output_bytes),
        epoch_tick: Duration::from_millis(c.epoch_tick_ms),
        max_concurrent_calls: c.max_concurrent_calls,
        cache_dir,
    }
}

/// Resolves unregistered handler names to uploaded components.
pub struct WasmSource {
    handler: Arc<WasmHandler>,
}

impl WasmSource {
    pub fn new(pool: PgPool, host: Arc<WasmHost>) -> WasmSource {
        WasmSource {
            handler: Arc::new(WasmHandler { pool, host }),
        }
    }
}

impl HandlerSource for WasmSource {
    fn resolve(&self, _name: &str, _version: Option<&str>) -> Option<Arc<dyn Handler>> {
        // Which component (if any) is decided per attempt, from the step row.
        Some(self.handler.clone())
    }
}

/// Runs a step's component (see the module docs).
pub struct WasmHandler {
    pool: PgPool,
    host: Arc<WasmHost>,
}

impl Handler for WasmHandler {
    fn call(&self, ctx: StepContext, cancel: CancellationToken) -> HandlerFuture {
        let (pool, host) = (self.pool.clone(), self.host.clone());
        Box::pin(async move { run(pool, host, ctx, cancel).await })
    }

    fn backend(&self) -> &'static str {
        "wasm"
    }
}

/// How the component was found (for logs and the benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Memory,
    Disk,
    Database,
}

/// Gets the prepared component `(name, version, sha256)`: from the host's
/// caches, else its bytes from the database, compiled.
pub async fn prepare(
    pool: &PgPool,
    host: &Arc<WasmHost>,
    name: &str,
    version: &str,
    sha256: &str,
) -> Result<(Arc<tasker_wasm_host::Prepared>, Source), StepError> {
    let internal = |e: &dyn std::fmt::Display| {
        StepError::retryable(format!("loading WASM handler {name}@{version}: {e}"))
            .with_kind(kind::WASM_LOAD)
    };
    let cached = {
        let (h, sha) = (host.clone(), sha256.to_string());
        tokio::task::spawn_blocking(move || h.cached(&sha))
            .await
            .map_err(|e| internal(&e))?
    };
    if let Some((p, from)) = cached {
        let source = match from {
            LoadedFrom::Disk => Source::Disk,
            _ => Source::Memory,
        };
        return Ok((p, source));
    }
    let bytes = tasker_store::component::bytes(pool, name, version, sha256)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| {
            StepError::retryable(format!(
                "WASM handler {name}@{version} changed or was deleted while loading"
            ))
            .with_kind(kind::WASM_LOAD)
        })?;
    let (h, sha) = (host.clone(), sha256.to_string());
    let loaded = tokio::task::spawn_blocking(move || h.load(&sha, &bytes))
        .await
        .map_err(|e| internal(&e))?;
    match loaded {
        Ok((p, _)) => Ok((p, Source::Database)),
        Err(e @ LoadError::Host(_)) => Err(internal(&e)),
        Err(e) => Err(StepError::permanent(format!(
            "WASM handler {name}@{version} cannot be loaded: {e}"
        ))
        .with_kind(kind::WASM_LOAD)),
    }
}

async fn run(
    pool: PgPool,
    host: Arc<WasmHost>,
    ctx: StepContext,
    cancel: CancellationToken,
) -> Outcome {
    let found = match tasker_store::component::for_step(&pool, ctx.step_id).await {
        Ok(found) => found,
        Err(e) => {
            return Outcome::failure(
                kind::WASM_LOAD,
                format!("looking up the WASM handler: {e}"),
                true,
            )
        }
    };
    let Some((name, version, sha256)) = found else {
        let pinned = tasker_store::component::pinned_version(&pool, ctx.step_id)
            .await
            .ok()
            .flatten();
        let version = pinned
            .map(|v| format!(" with version {v}"))
            .unwrap_or_default();
        return Outcome::failure(
            kind::NO_HANDLER,
            format!(
                "no handler named '{}' is registered on this worker, and no WASM component of that name{version} is uploaded",
                ctx.handler
            ),
            false,
        );
    };
    let (prepared, source) = match prepare(&pool, &host, &name, &version, &sha256).await {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let clock = Instant::now();
    let input = CallInput {
        task_id: ctx.task_id.to_string(),
        step_id: ctx.step_id.to_string(),
        namespace: ctx.namespace.clone(),
        template_name: ctx.template.clone(),
        step_name: ctx.step_name.clone(),
        attempt: ctx.attempt,
        max_attempts: ctx.max_attempts,
        input: ctx.input.to_string(),
        parent_results: serde_json::to_string(&ctx.parent_results).unwrap_or_default(),
        config: ctx.config.to_string(),
        traceparent: ctx.traceparent.clone().unwrap_or_default(),
        log: Some(Arc::new(AttemptSink(ctx.log.clone()))),
    };
    let timeout = Duration::from_secs(u64::from(ctx.timeout_seconds.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    // The guest sees cancellation (task cancelled, shutdown, the worker's own
    // timeout) at its next epoch tick.
    let watcher = {
        let (stop, cancel) = (stop.clone(), cancel.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let call = {
        let (h, p, stop) = (host.clone(), prepared.clone(), stop.clone());
        tokio::task::spawn_blocking(move || h.call(&p, &input, timeout, stop))
    };
    // If this future is dropped (the worker's timeout), the guest stops too.
    let _stop_on_drop = StopOnDrop(stop);
    let result = call.await;
    watcher.abort();
    let step_id = ctx.step_id;
    let elapsed_us = clock.elapsed().as_micros() as u64;
    match result {
        Err(join) => Outcome::failure(kind::INTERNAL, format!("WASM call failed: {join}"), true),
        Ok(Err(e)) => {
            tracing::warn!(%step_id, handler = %name, %version, error = %e, "WASM handler failed");
            call_error(e, &name, &version)
        }
        Ok(Ok(out)) => {
            if !out.stdout.is_empty() || !out.stderr.is_empty() || out.output_dropped > 0 {
                tracing::debug!(target: "tasker::wasm::guest", %step_id, handler = %name, %version,
                    stdout = %out.stdout, stderr = %out.stderr, dropped_bytes = out.output_dropped,
                    "guest output (also in the attempt's log)");
            }
            tracing::debug!(%step_id, handler = %name, %version, ?source, elapsed_us, "WASM handler ran");
            guest_outcome(out.result, &ctx.step_name, &name, &version)
        }
    }
}

/// The outcome of a call that returned: the guest's `ok` text read by the
/// rule every runtime shares (kind `result` when it is not JSON or not
/// exactly storable), or its `err` as kind `handler`.
pub fn guest_outcome(result: GuestResult, step_name: &str, name: &str, version: &str) -> Outcome {
    match result {
        GuestResult::Ok(json) => match parse_json_exact(&json) {
            Ok(value) => Outcome::success(value),
            Err(problem) => {
                let mut e = StepError::result(step_name, &problem);
                e.message = format!("WASM handler {name}@{version}: {}", e.message);
                Outcome::Failure(e)
            }
        },
        GuestResult::Err {
            retryable,
            message,
            retry_after_ms,
        } => Outcome::Failure(StepError {
            message,
            retryable,
            retry_after_ms: retry_after_ms.filter(|_| retryable),
            kind: kind::HANDLER.into(),
        }),
    }
}

/// The attempt's log as the host's [`GuestLog`].
#[derive(Debug)]
struct AttemptSink(AttemptLog);

impl GuestLog for AttemptSink {
    fn line(&self, level: GuestLevel, message: &str) {
        let level = match level {
            GuestLevel::Trace => LogLevel::Trace,
            GuestLevel::Debug => LogLevel::Debug,
            GuestLevel::Info => LogLevel::Info,
            GuestLevel::Warn => LogLevel::Warn,
            GuestLevel::Error => LogLevel::Error,
        };
        self.0.push(level, message);
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The outcome of a call that did not return.
pub fn call_error(e: CallError, name: &str, version: &str) -> Outcome {
    let message = format!("WASM handler {name}@{version}: {e}");
    match e {
        CallError::Deadline(_) => Outcome::failure(kind::TIMEOUT, message, true),
        CallError::Cancelled => Outcome::failure(kind::CANCELLED, message, true),
        CallError::Limit { .. } => Outcome::failure(kind::WASM_LIMIT, message, false),
        CallError::ResultTooLarge { .. } => {
            Outcome::failure(kind::WASM_RESULT_TOO_LARGE, message, false)
        }
        CallError::Trap(_) => Outcome::failure(kind::WASM_TRAP, message, false),
        CallError::Capacity(_) => Outcome::failure(kind::WASM_CAPACITY, message, true),
    }
}

/// Makes a host from `[wasm]` and adds its [`WasmSource`] to `registry`.
/// Returns the host (shared with callers that want to warm it).
pub async fn install(
    registry: &super::HandlerRegistry,
    pool: PgPool,
    config: &WasmConfig,
) -> Result<Arc<WasmHost>, LoadError> {
    let host_config = host_config(config);
    let host = tokio::task::spawn_blocking(move || WasmHost::new(host_config))
        .await
        .map_err(|e| LoadError::Host(e.to_string()))??;
    let host = Arc::new(host);
    registry.add_source(Arc::new(WasmSource::new(pool.clone(), host.clone())));
    tokio::spawn(forget_deleted(pool, Arc::downgrade(&host)));
    Ok(host)
}

/// How often a host drops the compiled components no longer uploaded.
const SWEEP: Duration = Duration::from_secs(60);

/// Every [`SWEEP`], forgets the in-memory components whose uploads were
/// deleted, until the host is dropped.
async fn forget_deleted(pool: PgPool, host: std::sync::Weak<WasmHost>) {
    loop {
        tokio::time::sleep(SWEEP).await;
        let Some(host) = host.upgrade() else { return };
        match tasker_store::component::uploaded_hashes(&pool).await {
            Ok(hashes) => {
                let keep = hashes.into_iter().collect();
                let forgotten = host.retain_only(&keep);
                if forgotten > 0 {
                    tracing::info!(
                        forgotten,
                        "forgot compiled WASM components no longer uploaded"
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "WASM cache sweep skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_errors_are_kind_handler_and_results_are_read_exactly() {
        for retryable in [true, false] {
            let err = GuestResult::Err {
                retryable,
                message: "no".into(),
                retry_after_ms: Some(5),
            };
            let Outcome::Failure(e) = guest_outcome(err, "s", "m", "1.0.0") else {
                panic!("expected a failure")
            };
            assert_eq!((e.kind.as_str(), e.retryable), (kind::HANDLER, retryable));
            assert_eq!(e.retry_after_ms, Some(5).filter(|_| retryable));
        }
        for text in ["{\"n\": 18446744073709551616}", "{\"n\": NaN}", "not json"] {
            let Outcome::Failure(e) =
                guest_outcome(GuestResult::Ok(text.into()), "s", "m", "1.0.0")
            else {
                panic!("{text}: expected a failure")
            };
            assert_eq!(
                (e.kind.as_str(), e.retryable),
                (kind::RESULT, false),
                "{text}"
            );
            assert!(
                e.message
                    .starts_with("WASM handler m@1.0.0: step 's' returned"),
                "{}",
                e.message
            );
        }
        assert_eq!(
            guest_outcome(
                GuestResult::Ok("18446744073709551615".into()),
                "s",
                "m",
                "1"
            ),
            Outcome::success(serde_json::json!(u64::MAX))
        );
    }
}
