//! libtasker: the stable C ABI over the tasker engine.
//!
//! Invariants: no panic crosses the FFI boundary (each entry point catches
//! and returns a status with a thread-local message); every allocation is
//! freed by the side that made it; WASM handlers only with the `wasm`
//! feature (off by default: no wasmtime in libtasker or the bindings).
//!
//! Two layers live here:
//!
//! - a small safe Rust API ([`Worker`], [`StepHandle`], [`DatabaseClient`]) that the Ruby
//!   and Python extensions use directly (this crate is also an rlib);
//! - the `extern "C"` functions in [`ffi`], a thin layer over that API, from
//!   which cbindgen generates `bindings-c/include/tasker.h`.
//!
//! Serving steps works in two ways, both first class:
//!
//! - **push**: a callback is registered per handler name and the worker host
//!   calls it on its own threads ([`Worker::register_push`]);
//! - **pull**: handler names are registered as pulled ([`Worker::register_pull`]);
//!   the host queues their steps and the caller's threads take them with
//!   [`Worker::next_step`] and complete them with [`StepHandle::complete`]. The
//!   caller owns the thread, which is how Ruby and Python run handlers under their
//!   global locks.
//!
//! Either way the engine's worker host does everything else: reading the queue,
//! the lease and its heartbeat, the step's timeout, reporting the outcome.
//!
//! # Versioning
//!
//! [`TASKER_ABI_VERSION`] is `MAJOR * 10000 + MINOR * 100 + PATCH`. A minor version
//! only adds functions and status codes; a major version may change or remove
//! them. A program built against major `M` works with any library of major `M`
//! and a minor at least the one it was built with.

#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
pub mod database_client;
pub mod error;
pub mod ffi;
pub mod handler;
mod handles;
pub mod log;
pub mod log_queue;
mod runtime;
pub mod worker;

pub use database_client::DatabaseClient;
pub use error::{AbiError, TaskerStatus};
pub use handler::StepHandle;
pub use runtime::set_host_language;
pub use worker::Worker;

/// The ABI version this header describes: `MAJOR * 10000 + MINOR * 100 + PATCH`.
pub const TASKER_ABI_VERSION: u32 = 10300;
/// The major part of `TASKER_ABI_VERSION`.
pub const TASKER_ABI_VERSION_MAJOR: u32 = 1;
