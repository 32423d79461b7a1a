//! `Tasker::Native`: the tasker gem's extension. A thin layer over the abi
//! crate's safe Rust API (the same contract libtasker's C functions wrap):
//!
//! - `Tasker::Native::Worker`: a worker host whose handlers are served by pull;
//!   Ruby threads take steps with `next_step` and complete them;
//! - `Tasker::Native::Step`: one pulled step (context, its attempt log,
//!   succeed, fail);
//! - `Tasker::Native::Client`: templates and tasks;
//! - `Tasker::Native.engine_log_*`: the engine's log lines, queued for a Ruby
//!   thread to drain into `Tasker.logger` ([`engine_log`]);
//! - `Tasker::Native::Bench`: an in-process pull queue for the dispatch benchmark
//!   (only with the `bench` feature, which `bench/dispatch.rb` builds with).
//!
//! Every call that blocks (connecting, waiting for a step, stopping, any
//! database call) runs without the GVL ([`nogvl`]). JSON crosses as strings;
//! `lib/tasker/*.rb` builds the Ruby API on top. Library errors become
//! `Tasker::Error` subclasses carrying the abi error's message.

#[cfg(feature = "bench")]
mod bench;
mod client;
mod engine_log;
mod nogvl;
mod worker;

use magnus::prelude::*;
use magnus::{Error, ExceptionClass, RModule, Ruby};
use tasker::AbiError;

/// The `Tasker::Error` subclass for an abi error (defined in lib/tasker/errors.rb).
fn error_class_name(e: &AbiError) -> &'static str {
    match e {
        AbiError::Timeout(_) => "TimeoutError",
        AbiError::Stopped => "StoppedError",
        AbiError::NotFound(_) => "NotFoundError",
        AbiError::Database(_) => "DatabaseError",
        AbiError::Config(_) => "ConfigError",
        AbiError::StepGone => "StepGoneError",
        AbiError::AlreadyCompleted => "AlreadyCompletedError",
        AbiError::State(_) => "StateError",
        AbiError::NullArgument(_)
        | AbiError::InvalidUtf8(_)
        | AbiError::InvalidJson { .. }
        | AbiError::Unrepresentable(_)
        | AbiError::InvalidArgument(_)
        | AbiError::InvalidHandle(_) => "InvalidArgumentError",
        AbiError::Internal(_) => "Error",
    }
}

/// Looks up `Tasker::<name>`, falling back to `RuntimeError`.
fn tasker_error_class(ruby: &Ruby, name: &str) -> ExceptionClass {
    ruby.class_object()
        .const_get::<_, RModule>("Tasker")
        .and_then(|m| m.const_get::<_, ExceptionClass>(name))
        .unwrap_or_else(|_| ruby.exception_runtime_error())
}

/// An abi error as a Ruby exception.
pub(crate) fn abi_error(ruby: &Ruby, e: AbiError) -> Error {
    Error::new(
        tasker_error_class(ruby, error_class_name(&e)),
        e.to_string(),
    )
}

/// A `Tasker::InvalidArgumentError` with `message`.
pub(crate) fn invalid(ruby: &Ruby, message: String) -> Error {
    Error::new(tasker_error_class(ruby, "InvalidArgumentError"), message)
}

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    tasker::set_host_language("ruby");
    let tasker = ruby.define_module("Tasker")?;
    let native = tasker.define_module("Native")?;
    native.const_set("ABI_VERSION", tasker::TASKER_ABI_VERSION)?;
    worker::define(ruby, native)?;
    client::define(ruby, native)?;
    engine_log::define(native)?;
    #[cfg(feature = "bench")]
    bench::define(ruby, native)?;
    Ok(())
}
