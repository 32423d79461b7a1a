//! The engine's log lines queued for a host language that must not be called
//! from the engine's threads (Ruby), or should not wait for its lock on them
//! (Python's GIL).
//!
//! [`install`] makes a bounded queue the log callback ([`crate::log`]): an
//! engine thread formats its line and `try_send`s it, never waiting; when the
//! queue is full the line is dropped and counted ([`take_dropped`]). A thread
//! of the host language takes the lines with [`drain`] and hands them to its
//! own logger (`logging.getLogger("tasker")`, `Tasker.logger`).

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

/// Lines held at most; more are dropped until the host drains.
const CAPACITY: usize = 4096;

/// One line of the engine's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineLine {
    /// `TASKER_LOG_ERROR` (1) .. `TASKER_LOG_TRACE` (5).
    pub level: i32,
    /// The engine module, e.g. `tasker_worker`.
    pub target: String,
    /// The message with its fields (`key=value`).
    pub message: String,
}

struct Queue {
    tx: Sender<EngineLine>,
    rx: Receiver<EngineLine>,
    dropped: AtomicU64,
}

fn queue() -> &'static Queue {
    static QUEUE: OnceLock<Queue> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
        Queue {
            tx,
            rx,
            dropped: AtomicU64::new(0),
        }
    })
}

/// The log callback: queues the line, never waits.
unsafe extern "C" fn enqueue(
    level: i32,
    target: *const c_char,
    message: *const c_char,
    _user_data: *mut c_void,
) {
    if target.is_null() || message.is_null() {
        return;
    }
    // SAFETY: the log layer passes two NUL-terminated strings valid for the call.
    let (target, message) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(message)) };
    let line = EngineLine {
        level,
        target: target.to_string_lossy().into_owned(),
        message: message.to_string_lossy().into_owned(),
    };
    let q = queue();
    if let Err(TrySendError::Full(_)) = q.tx.try_send(line) {
        q.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends the engine's lines up to `max_level` (`TASKER_LOG_*`, clamped) to the
/// queue from now on; called again, it changes the level.
pub fn install(max_level: i32) {
    crate::log::set_callback(Some(enqueue), std::ptr::null_mut(), max_level);
}

/// Gives the log back to its default (warnings and errors to stderr); lines
/// already queued stay until drained.
pub fn uninstall() {
    crate::log::set_callback(None, std::ptr::null_mut(), crate::log::TASKER_LOG_WARN);
}

/// The queued lines, at most `max`: waits up to `timeout` for the first, then
/// takes what is there without waiting. Empty when none came.
pub fn drain(timeout: Duration, max: usize) -> Vec<EngineLine> {
    let q = queue();
    let mut lines = Vec::new();
    match q.rx.recv_timeout(timeout) {
        Ok(line) => lines.push(line),
        Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return lines,
    }
    while lines.len() < max.max(1) {
        match q.rx.try_recv() {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    lines
}

/// How many lines were dropped (the queue was full) since the last call.
pub fn take_dropped() -> u64 {
    queue().dropped.swap(0, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test: the queue and the callback are process-wide.
    #[test]
    fn engine_lines_queue_up_to_the_capacity_then_count_as_dropped() {
        install(crate::log::TASKER_LOG_INFO);
        let dispatch = crate::log::dispatch();
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(target: "tasker_test_queue", step = 7, "queued through tracing");
            tracing::debug!(target: "tasker_test_queue", "too detailed");
        });
        uninstall();
        let lines: Vec<EngineLine> = drain(Duration::from_millis(50), usize::MAX)
            .into_iter()
            .filter(|l| l.target == "tasker_test_queue")
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].level, crate::log::TASKER_LOG_INFO);
        assert_eq!(lines[0].message, "queued through tracing step=7");

        let _ = take_dropped();
        for i in 0..CAPACITY + 3 {
            let msg = std::ffi::CString::new(format!("line {i}")).unwrap();
            // SAFETY: two valid C strings.
            unsafe {
                enqueue(
                    2,
                    c"tasker_worker".as_ptr(),
                    msg.as_ptr(),
                    std::ptr::null_mut(),
                )
            };
        }
        assert_eq!(take_dropped(), 3);
        assert_eq!(take_dropped(), 0);
        let first = drain(Duration::from_millis(10), 10);
        assert_eq!(first.len(), 10);
        assert_eq!(
            first[0],
            EngineLine {
                level: 2,
                target: "tasker_worker".into(),
                message: "line 0".into()
            }
        );
        assert_eq!(drain(Duration::ZERO, usize::MAX).len(), CAPACITY - 10);
        assert!(drain(Duration::from_millis(5), 10).is_empty());
    }
}
