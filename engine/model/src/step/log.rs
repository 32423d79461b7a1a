//! A step attempt's own log: the lines its handler wrote (a Rust handler's
//! `ctx.log`, Python `logging`, a Ruby `Logger`, a C log call, the WIT `log`
//! import, a guest's stdout), kept with the attempt so `tasker step logs`
//! shows them whichever process ran it.
//!
//! Capped per attempt ([`MAX_LINES`], [`MAX_BYTES`], [`MAX_LINE_BYTES`]): what
//! does not fit is counted in `dropped`, never kept, so a chatty handler
//! cannot fill the database or the worker's memory.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most lines kept per attempt.
pub const MAX_LINES: usize = 1_000;
/// Most bytes of message text kept per attempt.
pub const MAX_BYTES: usize = 64 * 1024;
/// Longest message kept whole; longer ones are cut (on a character boundary).
pub const MAX_LINE_BYTES: usize = 4 * 1024;

/// A log line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The level's name (`info`, `warn`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;
    /// Accepts the names above and the common aliases of Python, Ruby and
    /// syslog (`warning`, `critical`, `fatal`), in any case.
    fn from_str(s: &str) -> Result<LogLevel, String> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" | "notice" | "unknown" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "error" | "critical" | "fatal" => Ok(LogLevel::Error),
            other => Err(format!(
                "unknown log level '{other}' (trace, debug, info, warn, error)"
            )),
        }
    }
}

/// One line a handler logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub level: LogLevel,
    pub message: String,
}

/// What an attempt logged, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptLines {
    pub lines: Vec<LogLine>,
    /// Lines not kept because a cap was reached.
    pub dropped: u64,
}

impl AttemptLines {
    /// True when nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped == 0
    }
}

#[derive(Debug, Default)]
struct Buffer {
    kept: AttemptLines,
    bytes: usize,
}

/// The log of one attempt, shared by the worker and the handler's runtime
/// (cloning shares it). Writing never blocks for long and never fails.
#[derive(Clone, Default)]
pub struct AttemptLog(Arc<Mutex<Buffer>>);

impl AttemptLog {
    /// A new, empty log.
    pub fn new() -> AttemptLog {
        AttemptLog::default()
    }

    /// Appends a line (cut or dropped by the caps).
    pub fn push(&self, level: LogLevel, message: impl Into<String>) {
        let mut message: String = message.into();
        if message.len() > MAX_LINE_BYTES {
            let mut end = MAX_LINE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if b.kept.lines.len() >= MAX_LINES || b.bytes + message.len() > MAX_BYTES {
            b.kept.dropped += 1;
            return;
        }
        b.bytes += message.len();
        b.kept.lines.push(LogLine {
            at: Utc::now(),
            level,
            message,
        });
    }

    /// Appends text a guest wrote to a stream (stdout, stderr): a line each.
    pub fn push_text(&self, level: LogLevel, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.push(level, line);
        }
    }

    pub fn trace(&self, message: impl Into<String>) {
        self.push(LogLevel::Trace, message)
    }
    pub fn debug(&self, message: impl Into<String>) {
        self.push(LogLevel::Debug, message)
    }
    pub fn info(&self, message: impl Into<String>) {
        self.push(LogLevel::Info, message)
    }
    pub fn warn(&self, message: impl Into<String>) {
        self.push(LogLevel::Warn, message)
    }
    pub fn error(&self, message: impl Into<String>) {
        self.push(LogLevel::Error, message)
    }

    /// Takes what was logged so far, leaving the log empty.
    pub fn take(&self) -> AttemptLines {
        let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        b.bytes = 0;
        std::mem::take(&mut b.kept)
    }
}

impl std::fmt::Debug for AttemptLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        write!(f, "AttemptLog({} lines)", b.kept.lines.len())
    }
}

/// A log is not part of what a context *is*: contexts compare equal whatever
/// their handlers logged.
impl PartialEq for AttemptLog {
    fn eq(&self, _other: &AttemptLog) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_lines_bytes_and_line_length() {
        let log = AttemptLog::new();
        log.info("x".repeat(MAX_LINE_BYTES + 10));
        let first = log.take();
        assert_eq!(first.lines[0].message.chars().count(), MAX_LINE_BYTES + 1);
        for i in 0..(MAX_LINES + 5) {
            log.push(LogLevel::Debug, format!("line {i}"));
        }
        let kept = log.take();
        assert_eq!(kept.lines.len(), MAX_LINES);
        assert_eq!(kept.dropped, 5);
        for _ in 0..20 {
            log.warn("y".repeat(MAX_LINE_BYTES));
        }
        let kept = log.take();
        assert_eq!(kept.lines.len(), MAX_BYTES / MAX_LINE_BYTES);
        assert_eq!(kept.dropped, 20 - (MAX_BYTES / MAX_LINE_BYTES) as u64);
    }

    #[test]
    fn cuts_on_a_character_boundary_and_splits_streams() {
        let log = AttemptLog::new();
        log.error("é".repeat(MAX_LINE_BYTES));
        log.push_text(LogLevel::Info, "one\n\ntwo\n");
        let kept = log.take();
        assert!(kept.lines[0].message.ends_with('…'));
        assert_eq!(kept.lines[1].message, "one");
        assert_eq!(kept.lines[2].message, "two");
        assert_eq!("WARNING".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert!("loud".parse::<LogLevel>().is_err());
    }
}
