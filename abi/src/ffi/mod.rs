//! The `extern "C"` functions: argument checks, handle lookups and status codes
//! around the safe API. cbindgen turns this module into `tasker.h`.
//!
//! Rules every function follows (also written in the header):
//! - returns a [`TaskerStatus`]; on error, `tasker_last_error()` on the same
//!   thread says what went wrong;
//! - checks pointers for NULL, strings for UTF-8 and JSON for syntax, and
//!   looks handles up in a table (a freed handle is an error, never a crash);
//! - catches any panic (`TASKER_ERR_INTERNAL`): nothing unwinds into C;
//! - strings passed in are borrowed for the call; strings passed out through
//!   `char **` are the caller's, freed with `tasker_string_free`; strings passed
//!   out through `const char **` are borrowed from a handle and live until that
//!   handle is freed.

mod client;
mod common;
mod push;
mod step_handle;
mod worker;

pub use client::*;
pub use common::*;
pub use push::*;
pub use step_handle::*;
pub use worker::*;

use crate::handles::Table;

/// A worker host (opaque). Thread-safe: every function taking a `TaskerWorker`
/// may be called from any thread, concurrently.
pub struct TaskerWorker {
    _private: [u8; 0],
}

/// One attempt of one step, being served (opaque). Thread-safe, though a step
/// is normally used by one thread.
pub struct TaskerStep {
    _private: [u8; 0],
}

/// A client of the database: templates and tasks (opaque). Thread-safe.
pub struct TaskerClient {
    _private: [u8; 0],
}

pub(crate) static WORKERS: Table<crate::Worker> = Table::new("TaskerWorker");
pub(crate) static STEPS: Table<crate::StepHandle> = Table::new("TaskerStep");
pub(crate) static CLIENTS: Table<crate::DatabaseClient> = Table::new("TaskerClient");

#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod tests;
