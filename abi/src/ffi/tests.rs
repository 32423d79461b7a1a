//! The C functions called as C would call them: misuse answered with status
//! codes, push and pull backends without a database, and the header's freshness.

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tasker_model::step::{Outcome, StepContext};
use tasker_worker::handler::Handler;
use tokio_util::sync::CancellationToken;

use super::PushHandler;
use super::*;
use crate::error::TaskerStatus::{self, *};
use crate::handler::{PullHandler, PullQueue};

fn last_error() -> String {
    // SAFETY: tasker_last_error never returns NULL and is NUL-terminated.
    unsafe { CStr::from_ptr(tasker_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn ctx() -> StepContext {
    StepContext {
        task_id: uuid::Uuid::now_v7(),
        step_id: uuid::Uuid::now_v7(),
        namespace: "ns".into(),
        template: "t".into(),
        step_name: "only".into(),
        handler: "h".into(),
        attempt: 1,
        max_attempts: 3,
        input: serde_json::json!({"value": 3}),
        parent_results: Default::default(),
        config: serde_json::json!({}),
        timeout_seconds: 5,
    }
}

#[test]
fn header_is_current() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/tasker.h"));
    let committed = include_str!("../../../bindings-c/include/tasker.h");
    assert!(
        generated == committed,
        "bindings-c/include/tasker.h is stale: run `TASKER_WRITE_HEADER=1 cargo build -p tasker-abi` and commit it"
    );
}

#[test]
fn null_arguments_are_errors_with_messages() {
    let mut w: *mut TaskerWorker = std::ptr::null_mut();
    // SAFETY: the calls below are the misuse under test; the library checks.
    unsafe {
        assert_eq!(
            tasker_worker_new(std::ptr::null(), std::ptr::null(), std::ptr::null_mut()),
            TaskerErrNullArgument
        );
        assert!(last_error().contains("`out`"), "{}", last_error());
        assert_eq!(
            tasker_worker_add_namespace(std::ptr::null_mut(), c"ns".as_ptr()),
            TaskerErrNullArgument
        );
        assert_eq!(
            tasker_worker_new(std::ptr::null(), std::ptr::null(), &mut w),
            TaskerOk
        );
        assert_eq!(last_error(), "");
        assert_eq!(
            tasker_worker_add_namespace(w, std::ptr::null()),
            TaskerErrNullArgument
        );
        assert!(last_error().contains("namespace"));
        assert_eq!(
            tasker_worker_register_handler(w, c"h".as_ptr(), None, std::ptr::null_mut(), None, 0),
            TaskerErrNullArgument
        );
        assert_eq!(
            tasker_step_succeed(std::ptr::null_mut(), c"1".as_ptr()),
            TaskerErrNullArgument
        );
        assert_eq!(tasker_worker_free(w), TaskerOk);
    }
}

#[test]
fn invalid_utf8_and_bad_config_are_named() {
    let bad = [0x66u8, 0xff, 0xfe, 0];
    let mut w: *mut TaskerWorker = std::ptr::null_mut();
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            tasker_worker_new(bad.as_ptr() as *const c_char, std::ptr::null(), &mut w),
            TaskerErrInvalidUtf8
        );
        assert!(last_error().contains("config_toml"));
        assert!(w.is_null());
        assert_eq!(
            tasker_worker_new(
                c"[worker]\nconcurrency = \"many\"".as_ptr(),
                std::ptr::null(),
                &mut w
            ),
            TaskerErrConfig
        );
        assert!(last_error().contains("concurrency"), "{}", last_error());
        assert_eq!(
            tasker_worker_new(std::ptr::null(), std::ptr::null(), &mut w),
            TaskerOk
        );
        assert_eq!(
            tasker_worker_add_namespace(w, bad.as_ptr() as *const c_char),
            TaskerErrInvalidUtf8
        );
        assert_eq!(
            tasker_worker_add_namespace(w, c"Bad Name!".as_ptr()),
            TaskerErrInvalidArgument
        );
        assert_eq!(tasker_worker_start(w), TaskerErrInvalidArgument);
        assert!(
            last_error().contains("no handlers") || last_error().contains("no namespaces"),
            "{}",
            last_error()
        );
        assert_eq!(tasker_worker_free(w), TaskerOk);
    }
}

#[test]
fn freed_and_made_up_handles_are_detected() {
    let mut w: *mut TaskerWorker = std::ptr::null_mut();
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            tasker_worker_new(std::ptr::null(), std::ptr::null(), &mut w),
            TaskerOk
        );
        assert_eq!(tasker_worker_free(w), TaskerOk);
        assert_eq!(
            tasker_worker_add_namespace(w, c"ns".as_ptr()),
            TaskerErrInvalidHandle
        );
        assert!(last_error().contains("TaskerWorker"));
        assert_eq!(tasker_worker_free(w), TaskerErrInvalidHandle);
        // A pointer of another type, or one never handed out.
        assert_eq!(
            tasker_step_succeed(w as *mut TaskerStep, c"1".as_ptr()),
            TaskerErrInvalidHandle
        );
        assert_eq!(
            tasker_worker_start(0x1234 as *mut TaskerWorker),
            TaskerErrInvalidHandle
        );
        assert_eq!(tasker_client_free(std::ptr::null_mut()), TaskerOk);
    }
}

#[test]
fn unknown_handler_flags_are_refused_and_user_data_is_still_freed() {
    static FREED: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn noop(_s: *mut TaskerStep, _u: *mut c_void) -> i32 {
        0
    }
    unsafe extern "C" fn free(_u: *mut c_void) {
        FREED.fetch_add(1, Ordering::SeqCst);
    }
    let mut w: *mut TaskerWorker = std::ptr::null_mut();
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            tasker_worker_new(std::ptr::null(), std::ptr::null(), &mut w),
            TaskerOk
        );
        assert_eq!(
            tasker_worker_register_handler(
                w,
                c"h".as_ptr(),
                Some(noop),
                std::ptr::null_mut(),
                Some(free),
                0x80
            ),
            TaskerErrInvalidArgument
        );
        assert_eq!(FREED.load(Ordering::SeqCst), 1);
        assert_eq!(
            tasker_worker_register_handler(
                w,
                c"h".as_ptr(),
                Some(noop),
                std::ptr::null_mut(),
                Some(free),
                TASKER_HANDLER_NONBLOCKING
            ),
            TaskerOk
        );
        // Replacing the handler frees the first one's user_data.
        assert_eq!(
            tasker_worker_register_handler(
                w,
                c"h".as_ptr(),
                Some(noop),
                std::ptr::null_mut(),
                Some(free),
                0
            ),
            TaskerOk
        );
        assert_eq!(FREED.load(Ordering::SeqCst), 2);
        assert_eq!(tasker_worker_free(w), TaskerOk);
        assert_eq!(FREED.load(Ordering::SeqCst), 3);
    }
}

#[test]
fn status_names_cover_every_code() {
    for (code, name) in [
        (TaskerOk, "TASKER_OK"),
        (TaskerErrStepGone, "TASKER_ERR_STEP_GONE"),
        (TaskerErrInternal, "TASKER_ERR_INTERNAL"),
    ] {
        // SAFETY: static strings.
        assert_eq!(
            unsafe { CStr::from_ptr(tasker_status_name(code)) }
                .to_str()
                .unwrap(),
            name
        );
    }
}

/// What the push callbacks below saw.
static SECOND_COMPLETION: std::sync::Mutex<Option<TaskerStatus>> = std::sync::Mutex::new(None);

unsafe extern "C" fn succeed_twice(step: *mut TaskerStep, _u: *mut c_void) -> i32 {
    let mut json: *const c_char = std::ptr::null();
    // SAFETY: the step is live during the callback.
    unsafe {
        assert_eq!(tasker_step_context(step, &mut json), TaskerOk);
        let ctx: serde_json::Value =
            serde_json::from_str(CStr::from_ptr(json).to_str().unwrap()).unwrap();
        let n = ctx["input"]["value"].as_i64().unwrap();
        let result = std::ffi::CString::new(format!("{{\"value\":{}}}", n * n)).unwrap();
        assert_eq!(
            tasker_step_succeed(step, c"not json".as_ptr()),
            TaskerErrInvalidJson
        );
        assert_eq!(tasker_step_succeed(step, result.as_ptr()), TaskerOk);
        *SECOND_COMPLETION.lock().unwrap() =
            Some(tasker_step_fail(step, c"late".as_ptr(), true, -1));
        // Push steps belong to the worker.
        assert_eq!(tasker_step_free(step), TaskerErrState);
    }
    0
}

unsafe extern "C" fn forget_outcome(_s: *mut TaskerStep, _u: *mut c_void) -> i32 {
    0
}

unsafe extern "C" fn fail_with_status(_s: *mut TaskerStep, _u: *mut c_void) -> i32 {
    7
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_handlers_complete_once_and_missing_outcomes_fail() {
    for blocking in [true, false] {
        let h = PushHandler::new(succeed_twice, std::ptr::null_mut(), None, blocking);
        let out = h.call(ctx(), CancellationToken::new()).await;
        assert_eq!(out, Outcome::success(serde_json::json!({"value": 9})));
        assert_eq!(
            *SECOND_COMPLETION.lock().unwrap(),
            Some(TaskerErrAlreadyCompleted)
        );
    }
    let out = PushHandler::new(forget_outcome, std::ptr::null_mut(), None, false)
        .call(ctx(), CancellationToken::new())
        .await;
    let Outcome::Failure(e) = out else {
        panic!("expected a failure")
    };
    assert!(!e.retryable && e.kind == "no_outcome", "{e:?}");
    let out = PushHandler::new(fail_with_status, std::ptr::null_mut(), None, true)
        .call(ctx(), CancellationToken::new())
        .await;
    let Outcome::Failure(e) = out else {
        panic!("expected a failure")
    };
    assert!(e.retryable && e.message.contains("status 7"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_steps_complete_once_and_dropped_ones_fail() {
    let queue = PullQueue::new(4);
    let handler = PullHandler::new(queue.clone());
    let q = queue.clone();
    let taker = std::thread::spawn(move || {
        let step = q.next(Duration::from_secs(5)).expect("a step");
        let handle = STEPS.insert(step);
        let p: *mut TaskerStep = common::pointer_of(handle);
        // SAFETY: a live pulled step.
        unsafe {
            let mut attempt = 0u32;
            assert_eq!(tasker_step_attempt(p, &mut attempt), TaskerOk);
            assert_eq!(attempt, 1);
            assert_eq!(
                tasker_step_fail(p, c"try later".as_ptr(), true, 250),
                TaskerOk
            );
            assert_eq!(
                tasker_step_succeed(p, c"1".as_ptr()),
                TaskerErrAlreadyCompleted
            );
            assert_eq!(tasker_step_free(p), TaskerOk);
            assert_eq!(
                tasker_step_succeed(p, c"1".as_ptr()),
                TaskerErrInvalidHandle
            );
            assert_eq!(tasker_step_free(p), TaskerErrInvalidHandle);
        }
        // The next one is dropped without an outcome.
        drop(q.next(Duration::from_secs(5)).expect("a second step"));
    });
    let out = handler.call(ctx(), CancellationToken::new()).await;
    let Outcome::Failure(e) = out else {
        panic!("expected a failure")
    };
    assert_eq!(
        (e.retryable, e.retry_after_ms, e.message.as_str()),
        (true, Some(250), "try later")
    );
    let out = handler.call(ctx(), CancellationToken::new()).await;
    let Outcome::Failure(e) = out else {
        panic!("expected a failure")
    };
    assert_eq!(e.kind, "no_outcome");
    taker.join().unwrap();
    assert!(queue.next(Duration::from_millis(10)).is_none());
}

#[test]
fn a_step_whose_worker_gave_up_says_so() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queue = PullQueue::new(1);
    let handler = PullHandler::new(queue.clone());
    let fut = handler.call(ctx(), CancellationToken::new());
    drop(fut); // the host stopped waiting (timeout)
    let step = queue.next(Duration::from_secs(1)).unwrap();
    assert!(matches!(
        step.complete(Outcome::success(serde_json::json!(1))),
        Err(crate::AbiError::StepGone)
    ));
    drop(rt);
    let _ = Arc::strong_count(&step);
}
