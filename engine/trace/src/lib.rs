//! tasker-trace: the spans of a task's life, and their export over OTLP.
//!
//! A task's trace starts at its submission (continuing the caller's W3C
//! `traceparent` when there is one) and is kept with the task; step messages
//! carry it in their PGMQ headers, so the spans of every process that touches
//! the task — the client, the API, the orchestrators, each attempt in
//! whichever worker ran it, and the handler's own — join one trace.
//!
//! [`Span`] is the one way the engine makes a span. Until [`export::start`]
//! installs an exporter (`[telemetry] traces_enabled`), spans record nothing
//! and cost a few allocations; a span's [`Span::traceparent`] is then its
//! parent's, so handlers still see their task's trace id.

pub mod export;
mod result;
mod span;

pub use export::{start as start_export, Exporting, StartError};
pub use opentelemetry::trace::SpanKind;
pub use opentelemetry::KeyValue;
pub use result::{result_applied, Applied};
pub use span::Span;
