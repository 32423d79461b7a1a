//! Write a tasker step handler in Rust and compile it to a WASM component.
//!
//! ```ignore
//! struct Double;
//! impl tasker_guest::Handler for Double {
//!     fn handle(ctx: tasker_guest::Context) -> Result<serde_json::Value, tasker_guest::StepError> {
//!         let v = ctx.input["value"].as_i64().ok_or_else(|| tasker_guest::StepError::permanent("no value"))?;
//!         Ok(serde_json::json!(v * 2))
//!     }
//! }
//! tasker_guest::export!(Double);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`); the `.wasm` file is the component to upload.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "step-handler",
        pub_export_macro: true,
        export_macro_name: "__export_step_handler",
        default_bindings_module: "tasker_guest::bindings",
    });
}

use bindings::exports::tasker::handler::handler as wit;
pub use serde_json::{self, json, Value};

/// The contract version this SDK implements.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// One attempt's context, with the JSON fields parsed.
#[derive(Debug, Clone)]
pub struct Context {
    pub task_id: String,
    pub step_id: String,
    pub namespace: String,
    pub template_name: String,
    pub step_name: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The task's input.
    pub input: Value,
    /// The parents' results, keyed by parent step name.
    pub parent_results: Value,
    /// The handler configuration from the template.
    pub config: Value,
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub struct StepError {
    pub retryable: bool,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl StepError {
    /// A failure another attempt may fix.
    pub fn retryable(message: impl Into<String>) -> StepError {
        StepError {
            retryable: true,
            message: message.into(),
            retry_after_ms: None,
        }
    }
    /// A failure no attempt can fix.
    pub fn permanent(message: impl Into<String>) -> StepError {
        StepError {
            retryable: false,
            message: message.into(),
            retry_after_ms: None,
        }
    }
    /// Asks for the next attempt no earlier than `ms` milliseconds from now.
    pub fn retry_after_ms(mut self, ms: u64) -> StepError {
        self.retry_after_ms = Some(ms);
        self
    }
}

/// A step handler: implement this and name the type in [`export!`].
pub trait Handler {
    fn handle(ctx: Context) -> Result<Value, StepError>;
}

/// Log levels of [`log`].
pub use bindings::tasker::handler::log::Level;

/// Writes a message into the step's log.
pub fn log(level: Level, message: &str) {
    bindings::tasker::handler::log::log(level, message)
}

/// The attempt span's W3C `traceparent` (`00-<trace id>-<span id>-<flags>`),
/// so that the guest's own telemetry joins the task's trace; `None` when the
/// worker traces nothing.
pub fn traceparent() -> Option<String> {
    Some(bindings::tasker::handler::trace::traceparent()).filter(|t| !t.is_empty())
}

fn parse(what: &str, text: &str) -> Result<Value, StepError> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text)
        .map_err(|e| StepError::permanent(format!("the host sent invalid JSON as {what}: {e}")))
}

/// JSON text of `v` in a buffer of exactly its size (a guest's memory is
/// small and capped: no growth doubling).
fn to_json(v: &Value) -> String {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    if serde_json::to_writer(&mut count, v).is_err() {
        return v.to_string();
    }
    let mut buf = Vec::with_capacity(count.0);
    if serde_json::to_writer(&mut buf, v).is_err() {
        return v.to_string();
    }
    // serde_json writes valid UTF-8.
    String::from_utf8(buf).unwrap_or_default()
}

#[doc(hidden)]
pub fn __run<H: Handler>(ctx: wit::StepContext) -> Result<String, wit::StepError> {
    let run = || -> Result<Value, StepError> {
        let ctx = Context {
            input: parse("input", &ctx.input)?,
            parent_results: parse("parent results", &ctx.parent_results)?,
            config: parse("config", &ctx.config)?,
            task_id: ctx.task_id,
            step_id: ctx.step_id,
            namespace: ctx.namespace,
            template_name: ctx.template_name,
            step_name: ctx.step_name,
            attempt: ctx.attempt,
            max_attempts: ctx.max_attempts,
        };
        H::handle(ctx)
    };
    match run() {
        Ok(v) => Ok(to_json(&v)),
        Err(e) => Err(wit::StepError {
            kind: if e.retryable {
                wit::ErrorKind::Retryable
            } else {
                wit::ErrorKind::Permanent
            },
            message: e.message,
            retry_after_ms: e.retry_after_ms,
        }),
    }
}

/// Exports `$handler` (a type implementing [`Handler`]) as the component's handler.
#[macro_export]
macro_rules! export {
    ($handler:ty) => {
        struct __TaskerGuestExport;
        impl $crate::bindings::exports::tasker::handler::handler::Guest for __TaskerGuestExport {
            fn handle(
                ctx: $crate::bindings::exports::tasker::handler::handler::StepContext,
            ) -> ::core::result::Result<
                ::std::string::String,
                $crate::bindings::exports::tasker::handler::handler::StepError,
            > {
                $crate::__run::<$handler>(ctx)
            }
        }
        $crate::bindings::__export_step_handler!(__TaskerGuestExport with_types_in $crate::bindings);
    };
}
