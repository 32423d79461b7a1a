//! The engine's log lines, handed to the host program.
//!
//! The engine logs with `tracing`. Threads of this library's runtimes (and
//! calls that block on them) use a dispatcher whose one layer formats each event
//! as a line and gives it to the callback set with [`set_callback`] — or, when
//! none is set, writes warnings and errors to stderr. No global subscriber is
//! installed, so a host that has its own keeps it.

use std::ffi::{c_char, c_void, CString};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Log level: errors only.
pub const TASKER_LOG_ERROR: i32 = 1;
/// Log level: warnings and errors.
pub const TASKER_LOG_WARN: i32 = 2;
/// Log level: information, warnings and errors.
pub const TASKER_LOG_INFO: i32 = 3;
/// Log level: debugging detail and everything above.
pub const TASKER_LOG_DEBUG: i32 = 4;
/// Log level: everything.
pub const TASKER_LOG_TRACE: i32 = 5;

/// Receives one log line: its level (`TASKER_LOG_*`), its target (the engine
/// module, e.g. `tasker_worker`) and the message with its fields
/// (`key=value`). Both strings are valid only during the call. Called from any
/// thread, possibly concurrently.
pub type TaskerLogFn = Option<
    unsafe extern "C" fn(
        level: i32,
        target: *const c_char,
        message: *const c_char,
        user_data: *mut c_void,
    ),
>;

type LogFn = unsafe extern "C" fn(i32, *const c_char, *const c_char, *mut c_void);

struct Sink {
    f: LogFn,
    /// The caller's pointer, as a number: we never touch what it points to.
    user_data: usize,
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);
/// The most detailed level passed on (to the callback, or to stderr).
static MAX_LEVEL: AtomicI32 = AtomicI32::new(TASKER_LOG_WARN);

/// Sets (or with `None` removes) the log callback and the most detailed level
/// it receives. Without a callback, warnings and errors go to stderr.
pub fn set_callback(f: TaskerLogFn, user_data: *mut c_void, max_level: i32) {
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    *sink = f.map(|f| Sink {
        f,
        user_data: user_data as usize,
    });
    let level = if sink.is_some() {
        max_level.clamp(TASKER_LOG_ERROR, TASKER_LOG_TRACE)
    } else {
        TASKER_LOG_WARN
    };
    MAX_LEVEL.store(level, Ordering::Relaxed);
}

/// The attempt-log level of a `TASKER_LOG_*` number; `None` outside 1..=5.
pub fn attempt_level(level: i32) -> Option<tasker_model::step::log::LogLevel> {
    use tasker_model::step::log::LogLevel;
    match level {
        TASKER_LOG_ERROR => Some(LogLevel::Error),
        TASKER_LOG_WARN => Some(LogLevel::Warn),
        TASKER_LOG_INFO => Some(LogLevel::Info),
        TASKER_LOG_DEBUG => Some(LogLevel::Debug),
        TASKER_LOG_TRACE => Some(LogLevel::Trace),
        _ => None,
    }
}

fn level_number(level: &Level) -> i32 {
    match *level {
        Level::ERROR => TASKER_LOG_ERROR,
        Level::WARN => TASKER_LOG_WARN,
        Level::INFO => TASKER_LOG_INFO,
        Level::DEBUG => TASKER_LOG_DEBUG,
        Level::TRACE => TASKER_LOG_TRACE,
    }
}

/// The layer that turns events into lines.
struct Lines;

impl<S: Subscriber> Layer<S> for Lines {
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        level_number(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut line = LineVisitor::default();
        event.record(&mut line);
        let message = if line.fields.is_empty() {
            line.message
        } else if line.message.is_empty() {
            line.fields
        } else {
            format!("{} {}", line.message, line.fields)
        };
        let level = level_number(event.metadata().level());
        let target = event.metadata().target();
        let sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
        match sink.as_ref() {
            Some(sink) => {
                let (Ok(t), Ok(m)) = (
                    CString::new(target),
                    CString::new(message.replace('\0', "?")),
                ) else {
                    return;
                };
                // SAFETY: the caller promised `f` is callable from any thread with
                // its `user_data`; both strings live until it returns.
                unsafe { (sink.f)(level, t.as_ptr(), m.as_ptr(), sink.user_data as *mut c_void) };
            }
            None => eprintln!("tasker {} {target}: {message}", event.metadata().level()),
        }
    }
}

#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value}", field.name());
        }
    }
}

/// A dispatcher that logs through this module.
pub(crate) fn dispatch() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(Lines))
}

thread_local! {
    static GUARD: std::cell::RefCell<Option<tracing::dispatcher::DefaultGuard>> =
        const { std::cell::RefCell::new(None) };
}

/// Makes `dispatch` this thread's logger (runtime threads call this at start).
pub(crate) fn enter(dispatch: &Dispatch) {
    let guard = tracing::dispatcher::set_default(dispatch);
    GUARD.with(|g| *g.borrow_mut() = Some(guard));
}

/// Undoes [`enter`] (runtime threads call this when they stop).
pub(crate) fn leave() {
    GUARD.with(|g| g.borrow_mut().take());
}
