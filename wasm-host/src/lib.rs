//! tasker-wasm-host: tasker's sandboxed WebAssembly component host, and the
//! only crate that links wasmtime. It knows nothing of PostgreSQL.
//!
//! Invariants: a guest gets no ambient capability (it imports only the
//! contract's `log` and `trace`); every call runs under memory, instance and time
//! (epoch) limits, and a guest's trap or exhaustion is an error for that
//! call only.
//!
//! A [`WasmHost`] holds one wasmtime [`Engine`](wasmtime::Engine) (pooling allocator, epoch
//! interruption driven by a ticker thread) and runs components that implement
//! the `tasker:handler@0.1.0` contract (`sdk-wit/wit/handler.wit`):
//!
//! - [`WasmHost::validate`] checks uploaded bytes: a component, importing
//!   nothing outside [`allowed_import`], exporting the contract's `handler`,
//!   and compiling (the compiled form goes to the disk cache).
//! - [`WasmHost::cached`] / [`WasmHost::load`] give a [`Prepared`] component
//!   (an `InstancePre`), cached in memory by sha256 and compiled code cached
//!   on disk by sha256 + engine fingerprint, so a restart does not recompile.
//! - [`WasmHost::call`] runs one attempt in a fresh store with memory, table
//!   and instance limits, a deadline, captured stdout/stderr and a result cap;
//!   the guest's log lines and output also go to the call's [`GuestLog`].
//!
//! This crate knows nothing of PostgreSQL or the engine. Calls block: run them
//! on a blocking thread (`tokio::task::spawn_blocking`).

mod call;
mod components;
mod config;
mod contract;
mod error;
mod host;
mod pipe;
mod prepared;
mod sink;
mod store;

pub use call::{CallInput, CallOutput, GuestResult};
pub use components::{sha256_hex, ComponentInfo, LoadedFrom};
pub use config::HostConfig;
pub use contract::{allowed_import, CONTRACT_VERSION, HANDLER_EXPORT};
pub use error::{CallError, Limit, LoadError};
pub use host::WasmHost;
pub use prepared::Prepared;
pub use sink::{GuestLevel, GuestLog};
