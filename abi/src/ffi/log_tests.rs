//! `tasker_step_log` and `tasker_step_traceparent` called as C calls them:
//! lines land in the attempt's log with their levels, misuse is a status, the
//! trace context is borrowed from the step.

use std::ffi::{c_char, c_void, CStr};
use std::sync::Mutex;

use tasker_model::step::log::LogLevel;
use tasker_model::step::{Outcome, StepContext};
use tasker_worker::handler::Handler;
use tokio_util::sync::CancellationToken;

use super::tests::ctx;
use super::PushHandler;
use super::*;
use crate::error::TaskerStatus::{self, *};
use crate::log::{TASKER_LOG_DEBUG, TASKER_LOG_ERROR, TASKER_LOG_INFO, TASKER_LOG_TRACE};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// What the callback below saw: statuses of its misuse, the traceparent.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    statuses: Vec<TaskerStatus>,
    traceparent: Option<String>,
}

static SEEN: Mutex<Option<Seen>> = Mutex::new(None);

unsafe extern "C" fn log_and_succeed(step: *mut TaskerStep, _u: *mut c_void) -> i32 {
    let bad_utf8 = [0x66u8, 0xff, 0];
    // SAFETY: the step is live during the callback; the misuse is under test.
    let seen = unsafe {
        assert_eq!(
            tasker_step_log(step, TASKER_LOG_INFO, c"hello from c".as_ptr()),
            TaskerOk
        );
        assert_eq!(
            tasker_step_log(step, TASKER_LOG_ERROR, c"it broke".as_ptr()),
            TaskerOk
        );
        assert_eq!(
            tasker_step_log(step, TASKER_LOG_TRACE, c"detail".as_ptr()),
            TaskerOk
        );
        let statuses = vec![
            tasker_step_log(step, TASKER_LOG_DEBUG, std::ptr::null()),
            tasker_step_log(step, TASKER_LOG_DEBUG, bad_utf8.as_ptr() as *const c_char),
            tasker_step_log(step, 0, c"no level".as_ptr()),
            tasker_step_log(step, 6, c"no level".as_ptr()),
        ];
        let tp = tasker_step_traceparent(step);
        assert!(!tp.is_null());
        let traceparent = Some(CStr::from_ptr(tp).to_str().unwrap().to_string());
        assert_eq!(tasker_step_succeed(step, c"1".as_ptr()), TaskerOk);
        Seen {
            statuses,
            traceparent,
        }
    };
    *SEEN.lock().unwrap() = Some(seen);
    0
}

async fn run(ctx: StepContext) -> Seen {
    let h = PushHandler::new(log_and_succeed, std::ptr::null_mut(), None, true);
    let out = h.call(ctx, CancellationToken::new()).await;
    assert_eq!(out, Outcome::success(serde_json::json!(1)));
    SEEN.lock().unwrap().take().expect("the callback ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_handler_logs_into_its_attempt_and_reads_the_trace_context() {
    let mut c = ctx();
    c.traceparent = Some(TRACEPARENT.into());
    let log = c.log.clone();
    let seen = run(c).await;
    assert_eq!(
        seen,
        Seen {
            statuses: vec![
                TaskerErrNullArgument,
                TaskerErrInvalidUtf8,
                TaskerErrInvalidArgument,
                TaskerErrInvalidArgument
            ],
            traceparent: Some(TRACEPARENT.into()),
        }
    );
    let kept = log.take();
    let lines: Vec<(LogLevel, &str)> = kept
        .lines
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (LogLevel::Info, "hello from c"),
            (LogLevel::Error, "it broke"),
            (LogLevel::Trace, "detail"),
        ]
    );
    assert_eq!(kept.dropped, 0);

    // No trace context: "", not NULL.
    let seen = run(ctx()).await;
    assert_eq!(seen.traceparent.as_deref(), Some(""));
}

#[test]
fn a_null_or_freed_step_has_no_traceparent_and_cannot_log() {
    // SAFETY: the misuse under test; the library checks.
    unsafe {
        assert!(tasker_step_traceparent(std::ptr::null()).is_null());
        let message = CStr::from_ptr(tasker_last_error()).to_string_lossy();
        assert!(message.contains("step"), "{message}");
        assert_eq!(
            tasker_step_log(std::ptr::null(), TASKER_LOG_INFO, c"x".as_ptr()),
            TaskerErrNullArgument
        );
        let made_up = 0x7777_0000usize as *const TaskerStep;
        assert!(tasker_step_traceparent(made_up).is_null());
        assert_eq!(
            tasker_step_log(made_up, TASKER_LOG_INFO, c"x".as_ptr()),
            TaskerErrInvalidHandle
        );
    }
}
