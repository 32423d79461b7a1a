//! Recording metrics from the engine (worker, orchestrator) through the
//! `metrics` facade. Nothing here knows about HTTP: `api::metrics` installs the
//! Prometheus recorder and serves `/metrics`; without a recorder these calls
//! are no-ops.

use crate::step::Outcome;

/// Records one finished step attempt (called by the worker).
pub fn record_step(
    namespace: &str,
    handler: &str,
    outcome: &Outcome,
    attempt: u32,
    max_attempts: u32,
    seconds: f64,
) {
    let kind = match outcome {
        Outcome::Success { .. } => "success",
        Outcome::Failure(e) if e.retryable => "retryable_error",
        Outcome::Failure(_) => "permanent_error",
    };
    let (ns, h) = (namespace.to_string(), handler.to_string());
    metrics::counter!("tasker_steps_processed_total",
        "namespace" => ns.clone(), "handler" => h.clone(), "outcome" => kind)
    .increment(1);
    metrics::histogram!("tasker_step_duration_seconds", "namespace" => ns.clone(), "handler" => h)
        .record(seconds);
    if kind == "retryable_error" && attempt < max_attempts {
        metrics::counter!("tasker_retries_total", "namespace" => ns).increment(1);
    }
}

/// Records a completed task's latency (called by the orchestrator's finalizer).
pub fn record_task_latency(seconds: f64) {
    metrics::histogram!("tasker_task_latency_seconds").record(seconds);
}

/// Records that a schedule fired a tick (a task was created for it).
pub fn record_schedule_fire(namespace: &str) {
    metrics::counter!("tasker_schedule_fires_total", "namespace" => namespace.to_string())
        .increment(1);
}

/// Records that a step's message came back after its lease expired (the
/// worker holding it died or stalled), so the step runs again.
pub fn record_lease_expired(namespace: &str) {
    metrics::counter!("tasker_leases_expired_total", "namespace" => namespace.to_string())
        .increment(1);
}

/// Records finished tasks removed by a retention sweep (called by the orchestrator).
pub fn record_retention_removed(tasks: u64) {
    metrics::counter!("tasker_retention_tasks_removed_total").increment(tasks);
}

/// Records messages a claim read and deferred because their rate limit's
/// bucket was empty (called by the worker; `docs/flow-control.md`).
pub fn record_rate_limit_deferred(limit: &str, messages: u64) {
    metrics::counter!("tasker_rate_limit_deferred_total", "limit" => limit.to_string())
        .increment(messages);
}
