//! Step functions: read a step's context, give it its outcome.

use std::ffi::c_char;
use std::sync::Arc;

use tasker_model::step::{kind, Outcome, StepError};

use super::common::*;
use super::{TaskerStep, STEPS};
use crate::error::{AbiError, TaskerStatus};
use crate::StepHandle;

fn step(s: *const TaskerStep) -> Result<Arc<StepHandle>, AbiError> {
    if s.is_null() {
        return Err(AbiError::NullArgument("step"));
    }
    STEPS.get(handle_of(s))
}

/// The step's context as a JSON object: `task_id`, `step_id`, `namespace`,
/// `template`, `step_name`, `handler`, `attempt` (1 for the first),
/// `max_attempts`, `input` (the task's input), `parent_results` (by parent step
/// name), `config` (the handler's configuration from the template),
/// `timeout_seconds`, `recoveries` and, when the worker traces, `traceparent`
/// (also `tasker_step_traceparent`). `*json_out` is borrowed from the step: valid until the step
/// is freed (pull) or its callback returns (push). Thread-safe.
///
/// # Safety
/// `json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_step_context(
    step_handle: *mut TaskerStep,
    json_out: *mut *const c_char,
) -> TaskerStatus {
    guard(|| {
        out_arg(json_out, "json_out")?;
        let s = step(step_handle)?;
        // The string lives inside the handle's object, which the table keeps
        // alive until the handle is freed.
        // SAFETY: checked above.
        unsafe { write_out(json_out, s.context_json().as_ptr()) };
        Ok(())
    })
}

/// The step's name (borrowed, as `tasker_step_context`). Thread-safe.
///
/// # Safety
/// `name_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_step_name(
    step_handle: *mut TaskerStep,
    name_out: *mut *const c_char,
) -> TaskerStatus {
    guard(|| {
        out_arg(name_out, "name_out")?;
        let s = step(step_handle)?;
        // SAFETY: checked above.
        unsafe { write_out(name_out, s.name().as_ptr()) };
        Ok(())
    })
}

/// The attempt number (1 for the first). Thread-safe.
///
/// # Safety
/// `attempt_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_step_attempt(
    step_handle: *mut TaskerStep,
    attempt_out: *mut u32,
) -> TaskerStatus {
    guard(|| {
        out_arg(attempt_out, "attempt_out")?;
        let s = step(step_handle)?;
        // SAFETY: checked above.
        unsafe { write_out(attempt_out, s.context().attempt) };
        Ok(())
    })
}

/// Whether the worker no longer wants this step's outcome (its task was
/// cancelled, it timed out, or the worker is stopping): a long handler should
/// poll this and stop early. Thread-safe.
///
/// # Safety
/// `cancelled_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tasker_step_is_cancelled(
    step_handle: *mut TaskerStep,
    cancelled_out: *mut bool,
) -> TaskerStatus {
    guard(|| {
        out_arg(cancelled_out, "cancelled_out")?;
        let s = step(step_handle)?;
        // SAFETY: checked above.
        unsafe { write_out(cancelled_out, s.is_cancelled()) };
        Ok(())
    })
}

/// Appends `message` to this attempt's log at `level` (`TASKER_LOG_ERROR` ..
/// `TASKER_LOG_TRACE`): `tasker step logs <task> <step>` shows the line once
/// the attempt ends, whichever process ran it. Log before giving the
/// outcome: lines written after `tasker_step_succeed`/`tasker_step_fail` may
/// miss the stored log. A line longer than 4 KiB is cut; past 1,000 lines or
/// 64 KiB per attempt lines are counted as dropped (still `TASKER_OK`).
/// `TASKER_ERR_NULL_ARGUMENT` for a NULL message, `TASKER_ERR_INVALID_UTF8`
/// for one that is not UTF-8, `TASKER_ERR_INVALID_ARGUMENT` for a level
/// outside 1..=5. Never blocks for long. Thread-safe.
///
/// # Safety
/// `message` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn tasker_step_log(
    step_handle: *const TaskerStep,
    level: i32,
    message: *const c_char,
) -> TaskerStatus {
    guard(|| {
        let s = step(step_handle)?;
        let level = crate::log::attempt_level(level).ok_or_else(|| {
            AbiError::InvalidArgument(format!(
                "log level {level} is not one of TASKER_LOG_ERROR (1) .. TASKER_LOG_TRACE (5)"
            ))
        })?;
        // SAFETY: per the function's contract.
        let message = unsafe { str_arg(message, "message") }?;
        s.log(level, message);
        Ok(())
    })
}

/// The W3C trace context of this attempt, `00-<32 hex trace id>-<16 hex span
/// id>-<2 hex flags>` (pass it on as the `traceparent` header of calls the
/// handler makes, or make it the parent of the handler's own spans); "" when
/// the worker does not trace. Borrowed from the step, as `tasker_step_context`:
/// valid until the step is freed (pull) or its callback returns (push); do not
/// free it. NULL only when `step_handle` is NULL or not a live step
/// (`tasker_last_error()` says which). Thread-safe.
#[no_mangle]
pub extern "C" fn tasker_step_traceparent(step_handle: *const TaskerStep) -> *const c_char {
    let mut out: *const c_char = std::ptr::null();
    // `out` is only written on success: a panic leaves it NULL.
    let status = guard(std::panic::AssertUnwindSafe(|| {
        out = step(step_handle)?.traceparent_c().as_ptr();
        Ok(())
    }));
    if status == TaskerStatus::TaskerOk {
        out
    } else {
        std::ptr::null()
    }
}

/// Completes the step successfully with `result_json` (any JSON value) as its
/// result. Only the first `tasker_step_succeed`/`tasker_step_fail` counts; later
/// ones return `TASKER_ERR_ALREADY_COMPLETED`. Invalid JSON returns
/// `TASKER_ERR_INVALID_JSON` and leaves the step open. Valid JSON that tasker
/// cannot store exactly (an integer outside -2^63 .. 2^64-1, NaN or Infinity,
/// a number beyond a double, U+0000 in a string, a key twice in one object)
/// fails the step, not retried, with error kind `result` and a message naming
/// the value's path, and returns `TASKER_ERR_UNREPRESENTABLE`.
/// `TASKER_ERR_STEP_GONE`: the worker stopped waiting (timeout, cancel,
/// shutdown); the result is dropped. Thread-safe.
///
/// # Safety
/// `result_json` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn tasker_step_succeed(
    step_handle: *mut TaskerStep,
    result_json: *const c_char,
) -> TaskerStatus {
    guard(|| {
        let s = step(step_handle)?;
        // SAFETY: per the function's contract.
        let text = unsafe { str_arg(result_json, "result_json") }?;
        s.succeed_json(text)
    })
}

/// Completes the step as failed with `message` (error kind `handler`).
/// `retryable`: whether another attempt may help (the template's retry policy
/// decides when, unless `retry_after_ms` >= 0 asks for a delay); `false` fails
/// the step for good. Same rules as `tasker_step_succeed`. Thread-safe.
///
/// # Safety
/// `message` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn tasker_step_fail(
    step_handle: *mut TaskerStep,
    message: *const c_char,
    retryable: bool,
    retry_after_ms: i64,
) -> TaskerStatus {
    guard(|| {
        let s = step(step_handle)?;
        // SAFETY: per the function's contract.
        let message = unsafe { str_arg(message, "message") }?;
        let error = StepError {
            message: message.to_string(),
            retryable,
            retry_after_ms: u64::try_from(retry_after_ms).ok(),
            kind: kind::HANDLER.into(),
        };
        s.complete(Outcome::Failure(error))
    })
}

/// Frees a step from `tasker_worker_next_step`. Freeing a step without an
/// outcome fails that attempt (retryable). Steps lent to a push callback are
/// the worker's: freeing one returns `TASKER_ERR_STATE`. NULL is ignored; a
/// step freed twice returns `TASKER_ERR_INVALID_HANDLE`. Thread-safe.
#[no_mangle]
pub extern "C" fn tasker_step_free(step_handle: *mut TaskerStep) -> TaskerStatus {
    guard(|| {
        if step_handle.is_null() {
            return Ok(());
        }
        let s = step(step_handle)?;
        if !s.is_pulled() {
            return Err(AbiError::State(
                "this step belongs to a push callback; the worker frees it when the callback returns"
                    .into(),
            ));
        }
        STEPS.remove(handle_of(step_handle)).map(drop)
    })
}
