//! Client functions.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use tasker_store::task::NewTask;
use uuid::Uuid;

use super::common::*;
use super::{TaskerClient, CLIENTS};
use crate::error::{AbiError, TaskerStatus};
use crate::worker::load_config;
use crate::DatabaseClient;

fn client(c: *const TaskerClient) -> Result<Arc<DatabaseClient>, AbiError> {
    if c.is_null() {
        return Err(AbiError::NullArgument("client"));
    }
    CLIENTS.get(handle_of(c))
}

fn task_id_arg(text: &str) -> Result<Uuid, AbiError> {
    Uuid::parse_str(text)
        .map_err(|_| AbiError::InvalidArgument(format!("task id {text:?} is not a UUID")))
}

/// Creates a client: connects to the database (configured as for
/// `tasker_worker_new`) and creates the schema if needed. Blocks until
/// connected. On success `*out` is freed with `tasker_client_free`. Thread-safe.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_client_new(
    config_toml: *const c_char,
    database_url: *const c_char,
    out: *mut *mut TaskerClient,
) -> TaskerStatus {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: per the function's contract.
        let toml = unsafe { opt_str_arg(config_toml, "config_toml") }?;
        // SAFETY: per the function's contract.
        let url = unsafe { opt_str_arg(database_url, "database_url") }?;
        let config = load_config(toml, url)?;
        let c = DatabaseClient::new(&config)?;
        let handle = CLIENTS.insert(Arc::new(c));
        // SAFETY: checked above.
        unsafe { write_out(out, pointer_of(handle)) };
        Ok(())
    })
}

/// Registers a template given as YAML or JSON text. On success `*key_out` (may
/// be NULL if unwanted) is its key, `namespace/name@version`, freed with
/// `tasker_string_free`. The same definition again is fine; a different one
/// under a registered version is `TASKER_ERR_INVALID_ARGUMENT`. Thread-safe.
///
/// # Safety
/// `template_text` is NULL or NUL-terminated; `key_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_client_register_template(
    client_handle: *mut TaskerClient,
    template_text: *const c_char,
    key_out: *mut *mut c_char,
) -> TaskerStatus {
    guard(|| {
        let c = client(client_handle)?;
        // SAFETY: per the function's contract.
        let text = unsafe { str_arg(template_text, "template_text") }?;
        let key = c.register_template(text)?;
        if !key_out.is_null() {
            // SAFETY: non-NULL, writable per the contract.
            unsafe { write_string(key_out, key) }?;
        }
        Ok(())
    })
}

/// Creates a task from template `namespace`/`name` at `version` (NULL: the
/// newest) with `context_json` as its input (NULL: `{}`; it must satisfy the
/// template's input schema; a value tasker cannot store exactly, such as an
/// integer beyond 64 bits, is `TASKER_ERR_UNREPRESENTABLE`). With an
/// `idempotency_key` (may be NULL), creating again returns the first task. On
/// success `*task_id_out` is the task's id (a UUID string, freed with
/// `tasker_string_free`). Nothing is written on error. Thread-safe.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `task_id_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_client_create_task(
    client_handle: *mut TaskerClient,
    namespace: *const c_char,
    name: *const c_char,
    version: *const c_char,
    context_json: *const c_char,
    idempotency_key: *const c_char,
    task_id_out: *mut *mut c_char,
) -> TaskerStatus {
    guard(|| {
        out_arg(task_id_out, "task_id_out")?;
        let c = client(client_handle)?;
        // SAFETY (all four): per the function's contract.
        let namespace = unsafe { str_arg(namespace, "namespace") }?;
        let name = unsafe { str_arg(name, "name") }?;
        let version = unsafe { opt_str_arg(version, "version") }?;
        let context = unsafe { opt_str_arg(context_json, "context_json") }?;
        let key = unsafe { opt_str_arg(idempotency_key, "idempotency_key") }?;
        let context = match context {
            Some(text) => json_arg(text, "context_json")?,
            None => serde_json::json!({}),
        };
        let request = NewTask {
            namespace: namespace.to_string(),
            name: name.to_string(),
            version: version.map(str::to_string),
            context,
            priority: 0,
            idempotency_key: key.map(str::to_string),
            traceparent: None,
        };
        let created = c.create_task(&request)?;
        // SAFETY: checked above.
        unsafe { write_string(task_id_out, created.task_id.to_string()) }
    })
}

/// Creates the tasks of `tasks_json` in one transaction: all of them, or none
/// when one is refused. `tasks_json` is a JSON array (1 to 1,000 tasks) of
/// objects with `namespace`, `name` and optionally `version`, `context`,
/// `priority`, `idempotency_key` and a delayed start, `run_at` (RFC 3339, at
/// most a year ahead) or `delay_seconds`; it is read as exactly as an input is (an
/// integer beyond 64 bits is `TASKER_ERR_UNREPRESENTABLE`). A refused task is
/// named in `tasker_last_error()` (`tasks[i]: ...`) and the status is its own
/// (`TASKER_ERR_NOT_FOUND` for an unknown template). On success
/// `*results_json_out` is a JSON array, in order, of
/// `{"task_id": "<uuid>", "created": true|false}` (`false`: the task existed
/// under its idempotency key), freed with `tasker_string_free`. Nothing is
/// written on error. Several times faster per task than
/// `tasker_client_create_task`. Thread-safe. (Since ABI 1.3.)
///
/// # Safety
/// `tasks_json` is NULL or NUL-terminated; `results_json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_client_create_tasks(
    client_handle: *mut TaskerClient,
    tasks_json: *const c_char,
    results_json_out: *mut *mut c_char,
) -> TaskerStatus {
    guard(|| {
        out_arg(results_json_out, "results_json_out")?;
        let c = client(client_handle)?;
        // SAFETY: per the function's contract.
        let tasks = unsafe { str_arg(tasks_json, "tasks_json") }?;
        let created = c.create_tasks_json(tasks)?;
        // `Created` as the API returns it (its `unserved` is empty here, so left out).
        let results =
            serde_json::to_string(&created).map_err(|e| AbiError::Internal(e.to_string()))?;
        // SAFETY: checked above.
        unsafe { write_string(results_json_out, results) }
    })
}

/// The task with its steps and edges as JSON (the shape of the API's
/// `GET /v1/tasks/{id}`), into `*json_out` (freed with `tasker_string_free`).
/// Thread-safe.
///
/// # Safety
/// `task_id` is NULL or NUL-terminated; `json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_client_get_task(
    client_handle: *mut TaskerClient,
    task_id: *const c_char,
    json_out: *mut *mut c_char,
) -> TaskerStatus {
    guard(|| {
        out_arg(json_out, "json_out")?;
        let c = client(client_handle)?;
        // SAFETY: per the function's contract.
        let id = task_id_arg(unsafe { str_arg(task_id, "task_id") }?)?;
        let detail = c.get_task(id)?;
        // SAFETY: checked above.
        unsafe { write_string(json_out, detail.to_string()) }
    })
}

/// Waits up to `timeout_ms` for the task to settle: complete, error,
/// cancelled, resolved_manually, or blocked_by_failures (which needs an
/// operator). On `TASKER_OK`, `*state_out` (may be NULL if unwanted) is that
/// state (freed with `tasker_string_free`). `TASKER_ERR_TIMEOUT` if it had not
/// settled in time (the message names its state). Thread-safe.
///
/// # Safety
/// `task_id` is NULL or NUL-terminated; `state_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_client_wait_task(
    client_handle: *mut TaskerClient,
    task_id: *const c_char,
    timeout_ms: u64,
    state_out: *mut *mut c_char,
) -> TaskerStatus {
    guard(|| {
        let c = client(client_handle)?;
        // SAFETY: per the function's contract.
        let id = task_id_arg(unsafe { str_arg(task_id, "task_id") }?)?;
        let state = c.wait_task(id, Duration::from_millis(timeout_ms))?;
        if !state_out.is_null() {
            // SAFETY: non-NULL, writable per the contract.
            unsafe { write_string(state_out, state.to_string()) }?;
        }
        Ok(())
    })
}

/// Frees a client; the handle is invalid afterwards. NULL is ignored.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn tasker_client_free(client_handle: *mut TaskerClient) -> TaskerStatus {
    guard(|| {
        if client_handle.is_null() {
            return Ok(());
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(AbiError::State(
                "a client cannot be freed from inside a push handler".into(),
            ));
        }
        CLIENTS.remove(handle_of(client_handle)).map(drop)
    })
}
