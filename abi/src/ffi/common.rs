//! Version, errors, strings and logging.

use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, UnwindSafe};

use crate::error::{clear_last_error, last_error_ptr, set_last_error, AbiError, TaskerStatus};

/// The ABI version of this library: `MAJOR * 10000 + MINOR * 100 + PATCH`. A
/// minor version only adds; compare the major part (`/ 10000`) with
/// `TASKER_ABI_VERSION_MAJOR` from the header you built against
/// (`TASKER_ABI_VERSION` is the full version the header describes). Thread-safe.
#[no_mangle]
pub extern "C" fn tasker_abi_version() -> u32 {
    crate::TASKER_ABI_VERSION
}

/// The message of the last failed call on this thread ("" if the last call
/// succeeded). Never NULL. Valid until the next call into the library on this
/// thread; do not free it. Thread-safe (each thread has its own).
#[no_mangle]
pub extern "C" fn tasker_last_error() -> *const c_char {
    last_error_ptr()
}

/// The name of a status code (e.g. "TASKER_ERR_INVALID_JSON"); a static string,
/// never NULL, not to be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn tasker_status_name(status: TaskerStatus) -> *const c_char {
    use TaskerStatus::*;
    let name: &'static CStr = match status {
        TaskerOk => c"TASKER_OK",
        TaskerErrNullArgument => c"TASKER_ERR_NULL_ARGUMENT",
        TaskerErrInvalidUtf8 => c"TASKER_ERR_INVALID_UTF8",
        TaskerErrInvalidJson => c"TASKER_ERR_INVALID_JSON",
        TaskerErrInvalidArgument => c"TASKER_ERR_INVALID_ARGUMENT",
        TaskerErrInvalidHandle => c"TASKER_ERR_INVALID_HANDLE",
        TaskerErrAlreadyCompleted => c"TASKER_ERR_ALREADY_COMPLETED",
        TaskerErrState => c"TASKER_ERR_STATE",
        TaskerErrTimeout => c"TASKER_ERR_TIMEOUT",
        TaskerErrNotFound => c"TASKER_ERR_NOT_FOUND",
        TaskerErrDatabase => c"TASKER_ERR_DATABASE",
        TaskerErrConfig => c"TASKER_ERR_CONFIG",
        TaskerErrStopped => c"TASKER_ERR_STOPPED",
        TaskerErrStepGone => c"TASKER_ERR_STEP_GONE",
        TaskerErrInternal => c"TASKER_ERR_INTERNAL",
        TaskerErrUnrepresentable => c"TASKER_ERR_UNREPRESENTABLE",
    };
    name.as_ptr()
}

/// Frees a string this library returned through a `char **` argument. NULL is
/// ignored. Freeing a string twice, or one not from this library, is undefined
/// behaviour. Thread-safe.
///
/// # Safety
/// `s` is NULL or a string from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn tasker_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: per the contract, `s` came from `CString::into_raw` here.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Sets the callback that receives the engine's log lines up to `max_level`
/// (`TASKER_LOG_ERROR` .. `TASKER_LOG_TRACE`); NULL removes it. Without a
/// callback, warnings and errors go to stderr. The callback is called from
/// any thread, possibly concurrently, until it is replaced or removed; the
/// strings it gets are valid only during the call. Thread-safe.
#[no_mangle]
pub extern "C" fn tasker_log_set_callback(
    callback: crate::log::TaskerLogFn,
    user_data: *mut c_void,
    max_level: i32,
) -> TaskerStatus {
    guard(|| {
        crate::log::set_callback(callback, user_data, max_level);
        Ok(())
    })
}

/// Runs one C entry point: clears the last error, catches panics, turns
/// errors into status codes.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), AbiError> + UnwindSafe) -> TaskerStatus {
    clear_last_error();
    match catch_unwind(f) {
        Ok(Ok(())) => TaskerStatus::TaskerOk,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            e.status()
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with no message".into());
            set_last_error(&format!("internal error (a bug in libtasker): {msg}"));
            TaskerStatus::TaskerErrInternal
        }
    }
}

/// A required string argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn str_arg<'a>(
    p: *const c_char,
    name: &'static str,
) -> Result<&'a str, AbiError> {
    if p.is_null() {
        return Err(AbiError::NullArgument(name));
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| AbiError::InvalidUtf8(name))
}

/// An optional string argument (NULL is `None`).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    p: *const c_char,
    name: &'static str,
) -> Result<Option<&'a str>, AbiError> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: as the caller's contract.
        unsafe { str_arg(p, name) }.map(Some)
    }
}

/// A JSON argument, refused when it holds a value tasker cannot store exactly
/// ([`crate::handler::json_exact`]).
pub(crate) fn json_arg(text: &str, name: &'static str) -> Result<serde_json::Value, AbiError> {
    crate::handler::json_exact(text, name)
}

/// Checks an out-pointer before any work is done.
pub(crate) fn out_arg<T>(out: *mut T, name: &'static str) -> Result<(), AbiError> {
    if out.is_null() {
        Err(AbiError::NullArgument(name))
    } else {
        Ok(())
    }
}

/// Writes a value through a checked out-pointer.
///
/// # Safety
/// `out` passed [`out_arg`] and points to writable memory for a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: per the contract.
    unsafe { out.write(value) }
}

/// Writes a new string (the caller's to free) through a checked out-pointer.
///
/// # Safety
/// As [`write_out`].
pub(crate) unsafe fn write_string(out: *mut *mut c_char, s: String) -> Result<(), AbiError> {
    let c = CString::new(s)
        .map_err(|_| AbiError::Internal("a NUL byte inside a returned string".into()))?;
    // SAFETY: per the contract.
    unsafe { write_out(out, c.into_raw()) };
    Ok(())
}

/// The handle value of an opaque pointer.
pub(crate) fn handle_of<T>(p: *const T) -> u64 {
    p as usize as u64
}

/// The opaque pointer of a handle value.
pub(crate) fn pointer_of<T>(handle: u64) -> *mut T {
    handle as usize as *mut T
}
