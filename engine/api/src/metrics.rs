//! Prometheus metrics (`metrics` facade, `metrics-exporter-prometheus`
//! recorder) and `GET /metrics`.
//!
//! `/metrics` is public by default, like `/health/*`: it is read-only and no
//! label carries an id (labels are namespaces, handler names, outcomes, queue
//! and channel names, all bounded by configuration). With
//! `web.metrics_requires_key` it needs a key with `tasks:read`. A scrape
//! runs no query: the database's gauges are refreshed by one background
//! reader ([`refresh`], every 5 s), however many scrape.
//!
//! Series:
//! - `tasker_steps_processed_total{namespace,handler,outcome}` (worker; outcome
//!   `success`, `retryable_error` or `permanent_error`)
//! - `tasker_step_duration_seconds{namespace,handler}` histogram (worker)
//! - `tasker_retries_total{namespace}` (worker: retryable failures with
//!   attempts left)
//! - `tasker_task_latency_seconds` histogram, creation to completion (whoever
//!   finished the task: the orchestrator, or a worker that applied its last
//!   success)
//! - `tasker_leases_expired_total{namespace}` (worker: a step message read again
//!   after its lease ran out)
//! - `tasker_schedule_fires_total{namespace}` (orchestrator: schedule ticks
//!   that created a task)
//! - `tasker_retention_tasks_removed_total` (orchestrator: finished tasks
//!   deleted by the retention sweep)
//! - `tasker_rate_limit_deferred_total{limit}` (worker: step messages a claim
//!   read and deferred because their rate limit's bucket was empty)
//!
//! The worker and the orchestrator record through `tasker_model::telemetry`; this
//! module installs the recorder and serves the text.
//! - `tasker_workers{runtime,status}`: worker hosts in the registry by runtime
//!   and status (`live`, `stopped`, `gone`), and per live worker
//!   `tasker_worker_in_flight{worker,runtime}` and
//!   `tasker_worker_steps{worker,runtime,outcome}` (attempts finished since it
//!   started; `worker` is its `host:pid`, bounded by the live workers)
//! - `tasker_dlq_steps{namespace}`: steps in the dead-letter queue
//! - `tasker_pauses{scope}`: pauses in force (`task`, `template`, `namespace`)
//! - `tasker_circuit_breaker_state{breaker}` (0 closed, 1 half-open, 2 open)
//!   and `tasker_circuit_breaker_opened_total{breaker}`: this process's
//!   breakers (`database`, `handlers.<backend>`)
//! - `tasker_queue_depth{queue}`, `tasker_channel_used{channel}`,
//!   `tasker_channel_capacity{channel}`, `tasker_channel_dropped_total{channel}`
//!   (the queue depths from the last refresh)
//!
//! Only components in the serving process are counted: run workers and
//! orchestrators inside `tasker server` (or scrape each process that serves
//! the API).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::error::HttpError;
use super::ApiState;
use tasker_store::queue;
use tasker_store::template as tstore;

/// Histogram buckets, seconds: 5 ms to 10 min.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Installs the process-wide Prometheus recorder (once; later calls return
/// the same handle) and returns its handle.
pub fn install() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("buckets are not empty");
        match builder.install_recorder() {
            Ok(handle) => {
                describe();
                handle
            }
            Err(e) => {
                // Another recorder owns the process: serve an empty exposition.
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "tasker_steps_processed_total",
        "Step attempts finished by workers, by namespace, handler and outcome"
    );
    describe_counter!(
        "tasker_leases_expired_total",
        "Step messages read again after their lease ran out (a worker died or stalled)"
    );
    describe_counter!(
        "tasker_schedule_fires_total",
        "Schedule ticks fired (a task created), by namespace"
    );
    describe_counter!(
        "tasker_retention_tasks_removed_total",
        "Finished tasks deleted by the orchestrators' retention sweep"
    );
    describe_counter!(
        "tasker_rate_limit_deferred_total",
        "Step messages a claim deferred because their rate limit's bucket was empty, by limit"
    );
    describe_histogram!(
        "tasker_step_duration_seconds",
        Unit::Seconds,
        "Duration of one step attempt on a worker"
    );
    describe_histogram!(
        "tasker_task_latency_seconds",
        Unit::Seconds,
        "Time from a task's creation to its completion"
    );
    describe_counter!(
        "tasker_retries_total",
        "Retryable step failures with attempts left (a retry follows)"
    );
    describe_gauge!("tasker_queue_depth", "Messages in a PGMQ queue");
    describe_gauge!(
        "tasker_circuit_breaker_state",
        "A circuit breaker of this process: 0 closed, 1 half-open, 2 open"
    );
    describe_counter!(
        "tasker_circuit_breaker_opened_total",
        "How many times a circuit breaker of this process opened"
    );
    describe_gauge!(
        "tasker_dlq_steps",
        "Steps in the dead-letter queue (ended in error, waiting for an operator), by namespace"
    );
    describe_gauge!(
        "tasker_pauses",
        "Pauses in force, by scope (task, template, namespace)"
    );
    describe_gauge!(
        "tasker_workers",
        "Worker hosts in the registry, by runtime and status"
    );
    describe_gauge!(
        "tasker_worker_in_flight",
        "Steps running on a live worker at its last heartbeat"
    );
    describe_gauge!(
        "tasker_worker_steps",
        "Attempts a live worker finished since it started, by outcome"
    );
    describe_gauge!(
        "tasker_channel_used",
        "Messages in an in-process channel at its last send"
    );
    describe_gauge!(
        "tasker_channel_capacity",
        "Capacity of an in-process channel"
    );
    describe_counter!(
        "tasker_channel_dropped_total",
        "Wake-up hints dropped because a channel was full"
    );
}

/// The registry's gauges (see the module docs).
async fn record_workers(state: &ApiState) -> Result<(), HttpError> {
    let workers = tasker_store::worker::list(&state.pool, true).await?;
    let mut counts: std::collections::BTreeMap<(String, String), f64> = Default::default();
    for w in &workers {
        *counts
            .entry((w.runtime.clone(), w.status.clone()))
            .or_default() += 1.0;
        if w.status != "live" {
            continue;
        }
        let (id, rt) = (format!("{}:{}", w.host, w.pid), w.runtime.clone());
        metrics::gauge!("tasker_worker_in_flight", "worker" => id.clone(), "runtime" => rt.clone())
            .set(f64::from(w.in_flight));
        metrics::gauge!("tasker_worker_steps", "worker" => id.clone(), "runtime" => rt.clone(), "outcome" => "success")
            .set(w.steps_succeeded as f64);
        metrics::gauge!("tasker_worker_steps", "worker" => id, "runtime" => rt, "outcome" => "failure")
            .set(w.steps_failed as f64);
    }
    for runtime in ["rust", "c", "python", "ruby"] {
        for status in ["live", "stopped", "gone"] {
            counts
                .entry((runtime.to_string(), status.to_string()))
                .or_default();
        }
    }
    for ((runtime, status), n) in counts {
        metrics::gauge!("tasker_workers", "runtime" => runtime, "status" => status).set(n);
    }
    Ok(())
}

/// How often [`refresh`] reads the database's gauges.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the database's gauges (queue depths, the worker registry, the
/// dead-letter queue) every [`REFRESH`] until `stop`: one reader per server
/// however many scrapers, so a scrape costs no query.
pub async fn refresh(state: ApiState, stop: tokio_util::sync::CancellationToken) {
    loop {
        if let Err(e) = record_database_gauges(&state).await {
            tracing::debug!(error = %e.body.message, "metrics: database gauges not refreshed");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}

async fn record_database_gauges(state: &ApiState) -> Result<(), HttpError> {
    let mut queues: Vec<String> = tstore::pools(&state.pool)
        .await?
        .into_iter()
        .map(|(_, q, _)| q)
        .collect();
    queues.push(queue::RESULTS_QUEUE.to_string());
    let mut conn = state.pool.acquire().await?;
    for q in queues {
        match queue::stats(&mut conn, &q).await {
            Ok(s) => metrics::gauge!("tasker_queue_depth", "queue" => q).set(s.queue_length as f64),
            Err(e) => tracing::debug!(queue = %q, error = %e, "queue depth unavailable"),
        }
    }
    drop(conn);
    record_workers(state).await?;
    for (namespace, n) in tasker_store::dlq::sizes(&state.pool).await? {
        metrics::gauge!("tasker_dlq_steps", "namespace" => namespace).set(n as f64);
    }
    for (scope, n) in tasker_store::pause::counts(&state.pool).await? {
        metrics::gauge!("tasker_pauses", "scope" => scope).set(n as f64);
    }
    Ok(())
}

/// Prometheus text exposition of every tasker metric. The database's gauges
/// are those of the last refresh (every 5 s), so a scrape queries nothing.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text format (version 0.0.4)", body = String, content_type = "text/plain"),
    ))]
pub async fn metrics() -> impl IntoResponse {
    let handle = install();
    for (name, b) in tasker_model::breaker::snapshot() {
        use tasker_model::breaker::BreakerState as S;
        let level = match b.state {
            S::Closed => 0.0,
            S::HalfOpen => 1.0,
            S::Open => 2.0,
        };
        metrics::gauge!("tasker_circuit_breaker_state", "breaker" => name.clone()).set(level);
        metrics::counter!("tasker_circuit_breaker_opened_total", "breaker" => name)
            .absolute(b.opened_total);
    }
    for (name, s) in tasker_model::channel::saturation() {
        metrics::gauge!("tasker_channel_used", "channel" => name).set(s.used as f64);
        metrics::gauge!("tasker_channel_capacity", "channel" => name).set(s.capacity as f64);
        metrics::counter!("tasker_channel_dropped_total", "channel" => name).absolute(s.dropped);
    }
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}
