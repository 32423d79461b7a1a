//! Errors: the Rust error enum, the status codes the C functions return, and the
//! thread-local last-error message.

use std::cell::RefCell;

/// A status code returned by every C function. `TASKER_OK` (0) is success.
///
/// New codes may be added in minor versions; treat unknown non-zero codes as
/// errors.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskerStatus {
    /// Success.
    TaskerOk = 0,
    /// A required pointer argument was NULL.
    TaskerErrNullArgument = 1,
    /// A string argument was not valid UTF-8.
    TaskerErrInvalidUtf8 = 2,
    /// A JSON argument did not parse, or had the wrong shape.
    TaskerErrInvalidJson = 3,
    /// An argument was well formed but not acceptable (a bad name, an empty list, ...).
    TaskerErrInvalidArgument = 4,
    /// The handle was never created by this library, or was freed already.
    TaskerErrInvalidHandle = 5,
    /// The step already has an outcome.
    TaskerErrAlreadyCompleted = 6,
    /// The call does not fit the object's state (e.g. starting a worker twice).
    TaskerErrState = 7,
    /// The operation did not finish within its timeout.
    TaskerErrTimeout = 8,
    /// The thing asked for does not exist (task, template, ...).
    TaskerErrNotFound = 9,
    /// The database failed or could not be reached.
    TaskerErrDatabase = 10,
    /// The configuration is invalid or could not be read.
    TaskerErrConfig = 11,
    /// The worker has stopped: no more steps will come.
    TaskerErrStopped = 12,
    /// The worker no longer waits for this step (it timed out, its task was
    /// cancelled, or the worker stopped); the outcome was discarded.
    TaskerErrStepGone = 13,
    /// A bug inside the library (a caught panic); the message says where.
    TaskerErrInternal = 14,
    /// The JSON is valid but holds a value tasker cannot store exactly: an
    /// integer outside -2^63 .. 2^64-1, NaN or Infinity, a number beyond a
    /// double, U+0000 in a string, a key twice in one object. The last error
    /// names the value's path. From `tasker_step_succeed` the step has failed
    /// (kind `result`, not retried); from `tasker_client_create_task` no task
    /// was created. (Since ABI 1.1.)
    TaskerErrUnrepresentable = 15,
}

/// What went wrong in a call of this library.
#[derive(Debug, thiserror::Error)]
pub enum AbiError {
    #[error("argument `{0}` is NULL")]
    NullArgument(&'static str),
    #[error("argument `{0}` is not valid UTF-8")]
    InvalidUtf8(&'static str),
    #[error("argument `{name}` is not valid JSON: {detail}")]
    InvalidJson { name: &'static str, detail: String },
    /// Valid JSON holding a value tasker cannot store exactly; the message
    /// names it and its path.
    #[error("{0}")]
    Unrepresentable(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("`{0}` is not a live handle: it was freed already, or never created by libtasker")]
    InvalidHandle(&'static str),
    #[error("the step already has an outcome")]
    AlreadyCompleted,
    #[error("{0}")]
    State(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    NotFound(String),
    #[error("database: {0}")]
    Database(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("the worker has stopped")]
    Stopped,
    #[error(
        "the worker no longer waits for this step (it timed out, its task was cancelled, \
         or the worker stopped); the outcome was discarded"
    )]
    StepGone,
    #[error("internal error: {0}")]
    Internal(String),
}

impl AbiError {
    /// The status code for this error.
    pub fn status(&self) -> TaskerStatus {
        use TaskerStatus::*;
        match self {
            AbiError::NullArgument(_) => TaskerErrNullArgument,
            AbiError::InvalidUtf8(_) => TaskerErrInvalidUtf8,
            AbiError::InvalidJson { .. } => TaskerErrInvalidJson,
            AbiError::Unrepresentable(_) => TaskerErrUnrepresentable,
            AbiError::InvalidArgument(_) => TaskerErrInvalidArgument,
            AbiError::InvalidHandle(_) => TaskerErrInvalidHandle,
            AbiError::AlreadyCompleted => TaskerErrAlreadyCompleted,
            AbiError::State(_) => TaskerErrState,
            AbiError::Timeout(_) => TaskerErrTimeout,
            AbiError::NotFound(_) => TaskerErrNotFound,
            AbiError::Database(_) => TaskerErrDatabase,
            AbiError::Config(_) => TaskerErrConfig,
            AbiError::Stopped => TaskerErrStopped,
            AbiError::StepGone => TaskerErrStepGone,
            AbiError::Internal(_) => TaskerErrInternal,
        }
    }
}

impl From<tasker_store::StoreError> for AbiError {
    fn from(e: tasker_store::StoreError) -> Self {
        use tasker_store::StoreError as S;
        match e {
            S::TemplateNotFound { .. }
            | S::NamespaceNotFound(_)
            | S::TaskNotFound(_)
            | S::StepNotFound(_) => AbiError::NotFound(e.to_string()),
            S::Sql(_) | S::Queue(_) | S::Unavailable(_) | S::Corrupt(_) => {
                AbiError::Database(e.to_string())
            }
            // A task of a batch: its own kind, the message naming it.
            S::InBatch { index, source } => match AbiError::from(*source) {
                AbiError::NotFound(m) => AbiError::NotFound(format!("tasks[{index}]: {m}")),
                AbiError::Database(m) => AbiError::Database(format!("tasks[{index}]: {m}")),
                other => AbiError::InvalidArgument(format!("tasks[{index}]: {other}")),
            },
            _ => AbiError::InvalidArgument(e.to_string()),
        }
    }
}

impl From<tasker_config::ConfigError> for AbiError {
    fn from(e: tasker_config::ConfigError) -> Self {
        AbiError::Config(e.to_string())
    }
}

/// Longest last-error message kept, in bytes (longer ones are cut at a
/// character boundary).
const LAST_ERROR_CAPACITY: usize = 1024;

thread_local! {
    // A fixed buffer, not a heap string: nothing is left allocated at exit, so
    // leak checkers stay quiet about threads that never end (like `main`).
    static LAST_ERROR: RefCell<[u8; LAST_ERROR_CAPACITY]> = const { RefCell::new([0; LAST_ERROR_CAPACITY]) };
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    let mut end = message.len().min(LAST_ERROR_CAPACITY - 1);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    // NUL bytes inside the message would cut it short in C; replace them.
    LAST_ERROR.with(|cell| {
        let mut buf = cell.borrow_mut();
        for (i, b) in message.as_bytes()[..end].iter().enumerate() {
            buf[i] = if *b == 0 { b'?' } else { *b };
        }
        buf[end] = 0;
    });
}

/// Clears this thread's last error.
pub(crate) fn clear_last_error() {
    LAST_ERROR.with(|cell| cell.borrow_mut()[0] = 0);
}

/// A pointer to this thread's last-error buffer (NUL-terminated).
pub(crate) fn last_error_ptr() -> *const std::ffi::c_char {
    LAST_ERROR.with(|cell| cell.as_ptr() as *const std::ffi::c_char)
}

/// This thread's last error message, as a Rust string (for the bindings).
pub fn last_error() -> String {
    LAST_ERROR.with(|cell| {
        let buf = cell.borrow();
        let end = buf.iter().position(|b| *b == 0).unwrap_or(0);
        String::from_utf8_lossy(&buf[..end]).into_owned()
    })
}
