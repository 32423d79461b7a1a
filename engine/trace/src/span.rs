//! [`Span`]: one span of a task's trace, parented by a `traceparent`.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::global::{self, BoxedSpan};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use tasker_model::trace::Traceparent;

/// The instrumentation scope of every tasker span.
const SCOPE: &str = "tasker";

/// One span. Ends when [`Span::end`] is called or when dropped.
pub struct Span {
    /// `None` while nothing exports: no tracer is asked, no attribute made.
    inner: Option<BoxedSpan>,
    traceparent: String,
}

impl Span {
    /// Starts a span named `name`, a child of `parent` (a `traceparent`; none
    /// or a malformed one starts a new trace), with the `attributes` made
    /// only when spans are exported.
    pub fn start(
        name: &'static str,
        kind: SpanKind,
        parent: Option<&str>,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Span {
        Span::start_at(name, kind, parent, attributes, SystemTime::now())
    }

    /// [`Span::start`] with its start time in the past (a span made after the
    /// work it covers, e.g. from a result's own timestamps).
    pub fn start_at(
        name: &'static str,
        kind: SpanKind,
        parent: Option<&str>,
        attributes: impl FnOnce() -> Vec<KeyValue>,
        start: SystemTime,
    ) -> Span {
        let parent = parent.and_then(Traceparent::parse);
        if crate::export::running().is_none() {
            // Nothing is recorded: the parent's trace goes on (or a new one
            // starts, so the task and its handlers have a trace id to log).
            return Span {
                inner: None,
                traceparent: parent.unwrap_or_else(Traceparent::new_root).to_string(),
            };
        }
        let cx = match parent {
            Some(tp) => Context::new().with_remote_span_context(span_context(tp)),
            None => Context::new(),
        };
        let tracer = global::tracer(SCOPE);
        let inner = tracer
            .span_builder(Cow::Borrowed(name))
            .with_kind(kind)
            .with_attributes(attributes())
            .with_start_time(start)
            .start_with_context(&tracer, &cx);
        let sc = inner.span_context();
        let traceparent = if sc.is_valid() {
            Traceparent {
                trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
                span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
                sampled: sc.is_sampled(),
            }
        } else {
            parent.unwrap_or_else(Traceparent::new_root)
        };
        Span {
            inner: Some(inner),
            traceparent: traceparent.to_string(),
        }
    }

    /// This span's `traceparent`: what its children are started with (its
    /// parent's when spans are not exported).
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// Adds an attribute.
    pub fn set(&mut self, attribute: KeyValue) {
        if let Some(span) = &mut self.inner {
            span.set_attribute(attribute);
        }
    }

    /// Marks the span failed, with `message`.
    pub fn fail(&mut self, message: impl Into<String>) {
        if let Some(span) = &mut self.inner {
            span.set_status(Status::error(message.into()));
        }
    }

    /// Ends the span now.
    pub fn end(mut self) {
        if let Some(span) = &mut self.inner {
            span.end();
        }
    }

    /// Ends the span at `at` (a span whose work ended earlier).
    pub fn end_at(mut self, at: SystemTime) {
        if let Some(span) = &mut self.inner {
            span.end_with_timestamp(at);
        }
    }
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Span({})", self.traceparent)
    }
}

fn span_context(tp: Traceparent) -> SpanContext {
    SpanContext::new(
        TraceId::from(tp.trace_id),
        SpanId::from(tp.span_id),
        if tp.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_exporter_a_span_keeps_its_parents_trace() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = Span::start("t", SpanKind::Internal, Some(parent), Vec::new);
        assert_eq!(span.traceparent(), parent);
        let root = Span::start("t", SpanKind::Internal, Some("garbage"), Vec::new);
        let tp = Traceparent::parse(root.traceparent()).expect("a new trace");
        assert_ne!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        root.end();
    }
}
