//! The tokio runtime each worker or client owns.
//!
//! Every handle owns its runtime, and freeing the handle shuts it down and
//! joins its threads, so a program that frees what it created leaves no thread
//! and no allocation behind (valgrind checks this in CI). Runtime threads log
//! through [`crate::log`].

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
