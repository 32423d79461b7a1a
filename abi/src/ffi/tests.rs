//! The C functions called as C would call them: misuse answered with status
//! codes, push and pull backends without a database, and the header's freshness.

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tasker_model::step::{kind, Outcome, StepContext};
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

pub(super) fn ctx() -> StepContext {
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
        recoveries: 0,
        traceparent: None,
        log: Default::default(),
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
        (TaskerErrUnrepresentable, "TASKER_ERR_UNREPRESENTABLE"),
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
    assert_eq!(e.kind, kind::HANDLER);
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

/// The result a push callback below gives (a C string), and what
/// `tasker_step_succeed` returned for it.
static RESULT_TEXT: std::sync::Mutex<Option<std::ffi::CString>> = std::sync::Mutex::new(None);
static SUCCEED_STATUS: std::sync::Mutex<Option<(TaskerStatus, String)>> =
    std::sync::Mutex::new(None);

unsafe extern "C" fn succeed_with_text(step: *mut TaskerStep, _u: *mut c_void) -> i32 {
    let text = RESULT_TEXT.lock().unwrap().clone().unwrap();
    // SAFETY: the step is live during the callback.
    let status = unsafe { tasker_step_succeed(step, text.as_ptr()) };
    *SUCCEED_STATUS.lock().unwrap() = Some((status, last_error()));
    // A C handler that checks the status would fail the step; it has an
    // outcome already, which stays.
    // SAFETY: as above.
    let again = unsafe { tasker_step_fail(step, c"succeed failed".as_ptr(), true, -1) };
    assert!(status == TaskerOk || again == TaskerErrAlreadyCompleted);
    0
}

/// Runs `succeed_with_text` with `text`: the outcome and the status.
async fn push_result(text: &str) -> (Outcome, TaskerStatus, String) {
    *RESULT_TEXT.lock().unwrap() = Some(std::ffi::CString::new(text).unwrap());
    let out = PushHandler::new(succeed_with_text, std::ptr::null_mut(), None, false)
        .call(ctx(), CancellationToken::new())
        .await;
    let (status, error) = SUCCEED_STATUS.lock().unwrap().take().unwrap();
    (out, status, error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_json_cannot_carry_exactly_fail_the_step_naming_the_path() {
    let big = [
        ("{\"n\": 18446744073709551616}", "$.n"), // 2**64
        ("[717897987691852588770249]", "$[0]"),   // 3**50
        ("{\"a\": {\"b\": [-9223372036854775809]}}", "$.a.b[0]"), // -2**63-1
        ("{\"ratio\": nan}", "$.ratio"),          // printf("%f", NAN)
        ("{\"x\": -Infinity}", "$.x"),
        ("{\"s\": \"a\\u0000b\"}", "$.s"),
        ("{\"k\": 1, \"k\": 2}", "$.k"),
    ];
    for (text, path) in big {
        let (out, status, error) = push_result(text).await;
        assert_eq!(status, TaskerErrUnrepresentable, "{text}: {error}");
        let Outcome::Failure(e) = out else {
            panic!("{text}: expected a failure, got {out:?}")
        };
        assert_eq!(
            (e.kind.as_str(), e.retryable),
            (kind::RESULT, false),
            "{text}"
        );
        assert!(
            e.message.contains("step 'only'") && e.message.contains(&format!("at {path}:")),
            "{text}: {}",
            e.message
        );
        assert_eq!(error, e.message);
    }
    // The edges of what is kept exactly are kept exactly.
    let (out, status, _) =
        push_result("[18446744073709551615, -9223372036854775808, 1e308, 5e-324]").await;
    assert_eq!(status, TaskerOk);
    assert_eq!(
        out,
        Outcome::success(serde_json::json!([u64::MAX, i64::MIN, 1e308, 5e-324]))
    );
}

#[test]
fn doubles_given_as_text_are_read_back_bit_for_bit() {
    // serde_json's default float parser is off by one ulp for many doubles
    // (0.9627240348720673 became 0.9627240348720671); libtasker turns on its
    // `float_roundtrip`. Every double, written shortest (as Python, Ruby and
    // JavaScript write them) or with 17 digits (as C's "%.17g"), comes back.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..100_000 {
        let x = if i % 2 == 0 {
            f64::from_bits(next())
        } else {
            (next() >> 11) as f64 / (1u64 << 53) as f64
        };
        if !x.is_finite() {
            continue;
        }
        for text in [format!("{x:e}"), format!("{x:?}"), format!("{x:.16e}")] {
            let v = crate::handler::json_exact(&text, "x").unwrap();
            assert_eq!(v.as_f64().map(f64::to_bits), Some(x.to_bits()), "{text}");
        }
    }
}

#[test]
fn task_inputs_are_checked_like_results() {
    use crate::handler::json_exact;
    assert!(matches!(
        json_exact("{\"n\": 18446744073709551616}", "context_json"),
        Err(crate::AbiError::Unrepresentable(m)) if m.contains("`context_json`") && m.contains("$.n")
    ));
    assert!(matches!(
        json_exact("{", "context_json"),
        Err(crate::AbiError::InvalidJson {
            name: "context_json",
            ..
        })
    ));
    assert_eq!(
        json_exact("{\"n\": 18446744073709551615}", "c").unwrap(),
        serde_json::json!({"n": u64::MAX})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_failures_are_kind_handler_retryable_or_not() {
    let queue = PullQueue::new(4);
    let handler = PullHandler::new(queue.clone());
    let q = queue.clone();
    let taker = std::thread::spawn(move || {
        for (retryable, text) in [(true, "busy"), (false, "bad input")] {
            let step = q.next(Duration::from_secs(5)).expect("a step");
            let p: *mut TaskerStep = common::pointer_of(STEPS.insert(step));
            let message = std::ffi::CString::new(text).unwrap();
            // SAFETY: a live pulled step.
            unsafe {
                assert_eq!(
                    tasker_step_fail(p, message.as_ptr(), retryable, -1),
                    TaskerOk
                );
                assert_eq!(tasker_step_free(p), TaskerOk);
            }
        }
        // The bindings' path: text that is not JSON fails the step too.
        let step = q.next(Duration::from_secs(5)).expect("a step");
        let refused = step.succeed_or_refuse("{\"a\": NaN}").unwrap();
        assert!(refused.is_some_and(|m| m.contains("$.a")));
        let step = q.next(Duration::from_secs(5)).expect("a step");
        let refused = step.succeed_or_refuse("{oops").unwrap();
        assert!(refused.is_some_and(|m| m.contains("not JSON")));
    });
    for retryable in [true, false] {
        let Outcome::Failure(e) = handler.call(ctx(), CancellationToken::new()).await else {
            panic!("expected a failure")
        };
        assert_eq!((e.kind.as_str(), e.retryable), (kind::HANDLER, retryable));
    }
    for _ in 0..2 {
        let Outcome::Failure(e) = handler.call(ctx(), CancellationToken::new()).await else {
            panic!("expected a failure")
        };
        assert_eq!((e.kind.as_str(), e.retryable), (kind::RESULT, false));
    }
    taker.join().unwrap();
}
