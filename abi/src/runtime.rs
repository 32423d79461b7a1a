//! The tokio runtime each worker or client owns.
//!
//! Every handle owns its runtime, and freeing the handle shuts it down and
//! joins its threads, so a program that frees what it created leaves no thread
//! and no allocation behind (valgrind checks this in CI). Runtime threads log
//! through [`crate::log`].

use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

use crate::error::AbiError;

/// A multi-threaded runtime with `threads` workers named `name`.
pub(crate) fn build(name: &str, threads: usize) -> Result<Runtime, AbiError> {
    let dispatch = crate::log::dispatch();
    Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .on_thread_start(move || crate::log::enter(&dispatch))
        .on_thread_stop(crate::log::leave)
        .build()
        .map_err(|e| AbiError::Internal(format!("starting the runtime failed: {e}")))
}

static HOST_LANGUAGE: OnceLock<&'static str> = OnceLock::new();

/// Names the language of the program hosting this library (`python`,
/// `ruby`; `c` when never set): the bindings call it once at load, and a
/// worker's spans name it as their service (`tasker-python`, ...).
pub fn set_host_language(language: &'static str) {
    let _ = HOST_LANGUAGE.set(language);
}

/// The language set by [`set_host_language`], else `c`.
pub fn host_language() -> &'static str {
    HOST_LANGUAGE.get().copied().unwrap_or("c")
}
