//! Worker functions.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use super::common::*;
use super::push::{PushHandler, TaskerFreeFn, TaskerHandlerFn};
use super::{TaskerStep, TaskerWorker, STEPS, WORKERS};
use crate::error::{AbiError, TaskerStatus};
use crate::worker::{load_config, Worker};

/// Flag for `tasker_worker_register_handler`: the callback may block (I/O,
/// long work); it runs on a pool of threads for blocking work. The default.
pub const TASKER_HANDLER_BLOCKING: u32 = 0;
/// Flag for `tasker_worker_register_handler`: the callback never blocks and
/// returns within microseconds; it runs directly on the worker's async threads,
/// which saves a thread hand-off per step. A blocking callback registered this
/// way stalls the worker.
pub const TASKER_HANDLER_NONBLOCKING: u32 = 1;

fn new_worker(
    config_toml: Option<&str>,
    database_url: Option<&str>,
    out: *mut *mut TaskerWorker,
) -> Result<(), AbiError> {
    let config = load_config(config_toml, database_url)?;
    let handle = WORKERS.insert(Arc::new(Worker::new(config)));
    // SAFETY: `out` was checked by the caller of this function.
    unsafe { write_out(out, pointer_of(handle)) };
    Ok(())
}

/// Creates a worker from TOML text (NULL: the built-in defaults) laid over the
/// built-in defaults, e.g. `"[worker]\nconcurrency = 8\nnamespaces = [\"shop\"]"`.
/// `database_url` (may be NULL) wins over `database.url`; with neither,
/// `DATABASE_URL` from the environment, else the local default database.
/// On success `*out` is a new worker, freed with `tasker_worker_free`.
/// Nothing connects until `tasker_worker_start`. Thread-safe.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_worker_new(
    config_toml: *const c_char,
    database_url: *const c_char,
    out: *mut *mut TaskerWorker,
) -> TaskerStatus {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: per the function's contract.
        let toml = unsafe { opt_str_arg(config_toml, "config_toml") }?;
        // SAFETY: per the function's contract.
        let url = unsafe { opt_str_arg(database_url, "database_url") }?;
        new_worker(toml, url, out)
    })
}

/// Like `tasker_worker_new`, with the TOML read from the file at `config_path`.
///
/// # Safety
/// As `tasker_worker_new`.
#[no_mangle]
pub unsafe extern "C" fn tasker_worker_new_from_file(
    config_path: *const c_char,
    database_url: *const c_char,
    out: *mut *mut TaskerWorker,
) -> TaskerStatus {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: per the function's contract.
        let path = unsafe { str_arg(config_path, "config_path") }?;
        // SAFETY: per the function's contract.
        let url = unsafe { opt_str_arg(database_url, "database_url") }?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| AbiError::Config(format!("reading {path}: {e}")))?;
        new_worker(Some(&text), url, out)
    })
}

/// The worker behind a handle.
pub(crate) fn worker(w: *const TaskerWorker) -> Result<Arc<Worker>, AbiError> {
    if w.is_null() {
        return Err(AbiError::NullArgument("worker"));
    }
    WORKERS.get(handle_of(w))
}

/// Adds a namespace the worker serves (before start). Thread-safe.
///
/// # Safety
/// `namespace` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn tasker_worker_add_namespace(
    worker_handle: *mut TaskerWorker,
    namespace: *const c_char,
) -> TaskerStatus {
    guard(|| {
        let w = worker(worker_handle)?;
        // SAFETY: per the function's contract.
        let ns = unsafe { str_arg(namespace, "namespace") }?;
        w.add_namespace(ns)
    })
}

/// Adds a pool (a step queue `steps_<pool>`, named by templates' `pool:`)
/// the worker serves beyond its namespaces (before start). Thread-safe.
///
/// # Safety
/// `pool` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn tasker_worker_add_pool(
    worker_handle: *mut TaskerWorker,
    pool: *const c_char,
) -> TaskerStatus {
    guard(|| {
        let w = worker(worker_handle)?;
        // SAFETY: per the function's contract.
        let pool = unsafe { str_arg(pool, "pool") }?;
        w.add_pool(pool)
    })
}

/// Says which language the worker's handlers run in, for the worker registry
/// (`tasker worker list`): `runtime` such as `c`, `python`, `ruby`, and its
/// `version` (before start; default `c` and libtasker's version). Thread-safe.
///
/// # Safety
/// `runtime` and `version` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn tasker_worker_set_runtime(
    worker_handle: *mut TaskerWorker,
    runtime: *const c_char,
    version: *const c_char,
) -> TaskerStatus {
    guard(|| {
        let w = worker(worker_handle)?;
        // SAFETY: per the function's contract.
        let runtime = unsafe { str_arg(runtime, "runtime") }?;
        // SAFETY: per the function's contract.
        let version = unsafe { str_arg(version, "version") }?;
        w.set_runtime(runtime, version)
    })
}

/// Also runs an orchestrator in this worker's process (before start; default
/// off). Handy for single-process programs and tests. Thread-safe.
#[no_mangle]
pub extern "C" fn tasker_worker_set_orchestrate(
    worker_handle: *mut TaskerWorker,
    orchestrate: bool,
) -> TaskerStatus {
    guard(|| worker(worker_handle)?.set_orchestrate(orchestrate))
}

/// Registers a push handler: the worker calls `callback(step, user_data)` on its
/// threads for each step whose handler is `name` (see `TaskerHandlerFn`), possibly
/// several at once. `flags`: `TASKER_HANDLER_BLOCKING` (0) or
/// `TASKER_HANDLER_NONBLOCKING`. `free_user_data` (may be NULL) is called once with
/// `user_data` when the handler is replaced or the worker freed — also when this
/// call fails, so `user_data` is never leaked. Registering `name` again replaces
/// the handler. Thread-safe.
///
/// # Safety
/// `name` is NULL or NUL-terminated; `callback` and `free_user_data` are callable
/// from any thread with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn tasker_worker_register_handler(
    worker_handle: *mut TaskerWorker,
    name: *const c_char,
    callback: TaskerHandlerFn,
    user_data: *mut c_void,
    free_user_data: TaskerFreeFn,
    flags: u32,
) -> TaskerStatus {
    guard(move || {
        let Some(callback) = callback else {
            if let Some(free) = free_user_data {
                // SAFETY: per the contract, free is callable with user_data.
                unsafe { free(user_data) };
            }
            return Err(AbiError::NullArgument("callback"));
        };
        // From here on the handler owns user_data: dropping it frees it.
        let handler = PushHandler::new(
            callback,
            user_data,
            free_user_data,
            flags & TASKER_HANDLER_NONBLOCKING == 0,
        );
        if flags & !TASKER_HANDLER_NONBLOCKING != 0 {
            return Err(AbiError::InvalidArgument(format!(
                "unknown handler flags {flags:#x}"
            )));
        }
        let w = worker(worker_handle)?;
        // SAFETY: per the function's contract.
        let name = unsafe { str_arg(name, "name") }?;
        w.register_push(name, Arc::new(handler))
    })
}

/// Registers `name` as a pulled handler: its steps wait for
/// `tasker_worker_next_step`. Thread-safe.
///
/// # Safety
/// `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn tasker_worker_register_pull(
    worker_handle: *mut TaskerWorker,
    name: *const c_char,
) -> TaskerStatus {
    guard(|| {
        let w = worker(worker_handle)?;
        // SAFETY: per the function's contract.
        let name = unsafe { str_arg(name, "name") }?;
        w.register_pull(name)
    })
}

/// Connects to the database (creating the schema if needed) and starts
/// serving. Needs at least one namespace and one handler. Blocks until
/// connected. Thread-safe.
#[no_mangle]
pub extern "C" fn tasker_worker_start(worker_handle: *mut TaskerWorker) -> TaskerStatus {
    guard(|| worker(worker_handle)?.start())
}

/// Waits up to `timeout_ms` for a step of a pulled handler. On `TASKER_OK`,
/// `*step_out` is a step (read it, complete it with `tasker_step_succeed` or
/// `tasker_step_fail`, then free it with `tasker_step_free`) or NULL when none
/// came in time. `TASKER_ERR_STOPPED` once the worker stops and no queued step
/// is left: leave the loop. Call it from as many threads as you want steps in
/// parallel (up to `worker.concurrency` run at once). Thread-safe.
///
/// # Safety
/// `step_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_worker_next_step(
    worker_handle: *mut TaskerWorker,
    timeout_ms: u64,
    step_out: *mut *mut TaskerStep,
) -> TaskerStatus {
    guard(|| {
        out_arg(step_out, "step_out")?;
        let w = worker(worker_handle)?;
        let step = w.next_step(Duration::from_millis(timeout_ms))?;
        let ptr = match step {
            Some(step) => pointer_of(STEPS.insert(step)),
            None => std::ptr::null_mut(),
        };
        // SAFETY: checked above.
        unsafe { write_out(step_out, ptr) };
        Ok(())
    })
}

/// Stops serving: running steps get `worker.shutdown_grace_seconds` to finish
/// (pulled steps must still be completed; `tasker_worker_next_step` keeps
/// handing out steps already queued), then are released for another worker.
/// Blocks until stopped. Stopping twice is fine. Must not be called from a push
/// handler of the same worker (`TASKER_ERR_STATE`). Thread-safe.
#[no_mangle]
pub extern "C" fn tasker_worker_stop(worker_handle: *mut TaskerWorker) -> TaskerStatus {
    guard(|| worker(worker_handle)?.stop())
}

/// Stops the worker (as `tasker_worker_stop`) and frees it, and the
/// `user_data` of its push handlers. The handle is invalid afterwards (using
/// it returns `TASKER_ERR_INVALID_HANDLE`). NULL is ignored. Thread-safe.
#[no_mangle]
pub extern "C" fn tasker_worker_free(worker_handle: *mut TaskerWorker) -> TaskerStatus {
    guard(|| {
        if worker_handle.is_null() {
            return Ok(());
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(AbiError::State(
                "a worker cannot be freed from inside one of its own handlers".into(),
            ));
        }
        let w = WORKERS.remove(handle_of(worker_handle))?;
        w.stop()
    })
}
