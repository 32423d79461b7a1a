//! Where a guest's log lines go besides `tracing`: the caller's [`GuestLog`]
//! (the worker passes the attempt's log, so the lines are stored with the
//! attempt). The contract's `log` import writes a line per call; the guest's
//! captured stdout and stderr are written after the call, a line per
//! non-empty line (stdout at `info`, stderr at `warn`).

use std::fmt::Debug;

/// A guest log line's level (the contract's `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Receives a call's guest log lines. Called on the call's (blocking)
/// thread: it must not block for long. Caps are the receiver's business.
pub trait GuestLog: Send + Sync + Debug {
    /// One line the guest logged.
    fn line(&self, level: GuestLevel, message: &str);

    /// Text the guest wrote to a stream: one line each, blank ones skipped.
    fn text(&self, level: GuestLevel, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.line(level, line);
        }
    }
}
