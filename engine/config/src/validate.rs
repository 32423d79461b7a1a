//! Checks of the merged configuration that types alone cannot express
//! (ranges, cross-key rules). Every error names the dotted key.

use super::error::ConfigError;
use super::TaskerConfig;
use std::net::SocketAddr;

/// The shortest bootstrap key accepted (`web.auth.bootstrap_key`).
pub const MIN_BOOTSTRAP_KEY_CHARS: usize = 24;

/// Largest batch size accepted anywhere.
pub const MAX_BATCH_SIZE: u32 = 1000;
/// Longest namespace name (it becomes part of a PGMQ queue name).
pub const MAX_NAMESPACE_LEN: usize = 40;
/// Highest `templates.max_depth`: the YAML and JSON deserializers stop at 128 levels.
pub const MAX_TEMPLATE_DEPTH: u32 = 128;

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn at_least_one<T: PartialOrd + From<u8>>(key: &str, value: T) -> Result<(), ConfigError> {
    if value < T::from(1u8) {
        return Err(invalid(key, "must be at least 1"));
    }
    Ok(())
}

fn batch_size(key: &str, value: u32) -> Result<(), ConfigError> {
    if !(1..=MAX_BATCH_SIZE).contains(&value) {
        return Err(invalid(
            key,
            format!("must be between 1 and {MAX_BATCH_SIZE}, got {value}"),
        ));
    }
    Ok(())
}

/// A name that may become part of an SQL identifier: a lowercase letter, then
/// lowercase letters, digits or `_`, at most `max` characters.
fn identifier(key: &str, value: &str, max: usize) -> Result<(), ConfigError> {
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || value.len() > max {
        return Err(invalid(
            key,
            format!(
                "must start with a lowercase letter and hold only a-z, 0-9 and _ \
                 (at most {max} characters), got {value:?}"
            ),
        ));
    }
    Ok(())
}

/// Runs every check; returns the first failure.
pub(crate) fn validate(config: &TaskerConfig) -> Result<(), ConfigError> {
    let db = &config.database;
    at_least_one("database.max_connections", db.max_connections)?;
    if db.min_connections > db.max_connections {
        return Err(invalid(
            "database.min_connections",
            format!(
                "({}) must not exceed database.max_connections ({})",
                db.min_connections, db.max_connections
            ),
        ));
    }
    at_least_one("database.acquire_timeout_ms", db.acquire_timeout_ms)?;
    at_least_one("database.private_cluster_port", db.private_cluster_port)?;
    identifier("database.database_name", &db.database_name, 63)?;
    if db.data_dir.as_os_str().is_empty() {
        return Err(invalid("database.data_dir", "must not be empty"));
    }
    if db.url.as_ref().is_some_and(|url| url.expose().is_empty()) {
        return Err(invalid(
            "database.url",
            "must not be empty; leave it unset instead",
        ));
    }

    let queues = &config.queues;
    at_least_one(
        "queues.visibility_timeout_seconds",
        queues.visibility_timeout_seconds,
    )?;
    batch_size("queues.read_batch_size", queues.read_batch_size)?;
    at_least_one("queues.poll_interval_ms", queues.poll_interval_ms)?;
    at_least_one("queues.max_message_bytes", queues.max_message_bytes)?;

    let orch = &config.orchestration;
    batch_size("orchestration.result_batch_size", orch.result_batch_size)?;
    at_least_one(
        "orchestration.fallback_poll_interval_ms",
        orch.fallback_poll_interval_ms,
    )?;
    at_least_one(
        "orchestration.stale_task_after_seconds",
        orch.stale_task_after_seconds,
    )?;
    at_least_one(
        "orchestration.stale_sweep_interval_seconds",
        orch.stale_sweep_interval_seconds,
    )?;
    at_least_one(
        "orchestration.retry_sweep_interval_ms",
        orch.retry_sweep_interval_ms,
    )?;

    let worker = &config.worker;
    if worker.namespaces.is_empty() {
        return Err(invalid(
            "worker.namespaces",
            "must name at least one namespace",
        ));
    }
    for namespace in &worker.namespaces {
        identifier("worker.namespaces", namespace, MAX_NAMESPACE_LEN)?;
    }
    for pool in &worker.pools {
        identifier("worker.pools", pool, MAX_NAMESPACE_LEN)?;
    }
    at_least_one(
        "worker.registry_heartbeat_seconds",
        worker.registry_heartbeat_seconds,
    )?;
    at_least_one("worker.concurrency", worker.concurrency)?;
    batch_size("worker.batch_size", worker.batch_size)?;
    at_least_one(
        "worker.heartbeat_interval_seconds",
        worker.heartbeat_interval_seconds,
    )?;
    if worker.heartbeat_interval_seconds >= queues.visibility_timeout_seconds {
        return Err(invalid(
            "worker.heartbeat_interval_seconds",
            format!(
                "({}) must be shorter than queues.visibility_timeout_seconds ({}), \
                 or leases expire between heartbeats",
                worker.heartbeat_interval_seconds, queues.visibility_timeout_seconds
            ),
        ));
    }

    let ch = &config.channels;
    for (key, size) in [
        ("channels.command_buffer", ch.command_buffer),
        ("channels.task_requests", ch.task_requests),
        ("channels.step_enqueue", ch.step_enqueue),
        ("channels.step_results", ch.step_results),
        ("channels.finalization", ch.finalization),
        ("channels.worker_dispatch", ch.worker_dispatch),
        ("channels.worker_results", ch.worker_results),
    ] {
        if size < 1 {
            return Err(invalid(
                key,
                "must be at least 1 (every channel is bounded)",
            ));
        }
    }
    if !(1..=100).contains(&ch.saturation_warn_percent) {
        return Err(invalid(
            "channels.saturation_warn_percent",
            format!(
                "must be between 1 and 100, got {}",
                ch.saturation_warn_percent
            ),
        ));
    }

    let cb = &config.circuit_breakers;
    at_least_one("circuit_breakers.failure_threshold", cb.failure_threshold)?;
    at_least_one("circuit_breakers.reset_timeout_ms", cb.reset_timeout_ms)?;

    let web = &config.web;
    if web.bind.parse::<SocketAddr>().is_err() {
        return Err(invalid(
            "web.bind",
            format!(
                "must be an IP address and port such as 127.0.0.1:8080, got {:?}",
                web.bind
            ),
        ));
    }
    at_least_one("web.request_body_limit_bytes", web.request_body_limit_bytes)?;
    at_least_one("web.request_timeout_ms", web.request_timeout_ms)?;
    at_least_one("web.header_read_timeout_ms", web.header_read_timeout_ms)?;
    at_least_one("web.idle_timeout_ms", web.idle_timeout_ms)?;
    at_least_one("web.max_connections", web.max_connections)?;
    at_least_one("web.max_event_streams", web.max_event_streams)?;
    at_least_one(
        "web.max_event_streams_per_key",
        web.max_event_streams_per_key,
    )?;
    at_least_one("web.list_payload_limit_bytes", web.list_payload_limit_bytes)?;
    if web
        .auth
        .bootstrap_key
        .as_ref()
        .is_some_and(|key| key.expose().is_empty())
    {
        return Err(invalid(
            "web.auth.bootstrap_key",
            "must not be empty; leave it unset instead",
        ));
    }
    if let Some(key) = &web.auth.bootstrap_key {
        let len = key.expose().chars().count();
        if len < MIN_BOOTSTRAP_KEY_CHARS {
            return Err(invalid(
                "web.auth.bootstrap_key",
                format!("must be at least {MIN_BOOTSTRAP_KEY_CHARS} characters (it is {len}); generate one with `openssl rand -hex 32`"),
            ));
        }
    }

    let wasm = &config.wasm;
    at_least_one("wasm.max_component_bytes", wasm.max_component_bytes)?;
    at_least_one("wasm.memory_limit_bytes", wasm.memory_limit_bytes)?;
    at_least_one("wasm.table_elements_limit", wasm.table_elements_limit)?;
    at_least_one("wasm.instances_limit", wasm.instances_limit)?;
    at_least_one("wasm.tables_limit", wasm.tables_limit)?;
    at_least_one("wasm.memories_limit", wasm.memories_limit)?;
    at_least_one("wasm.max_result_bytes", wasm.max_result_bytes)?;
    at_least_one("wasm.epoch_tick_ms", wasm.epoch_tick_ms)?;
    at_least_one("wasm.max_concurrent_calls", wasm.max_concurrent_calls)?;

    let templates = &config.templates;
    at_least_one("templates.max_bytes", templates.max_bytes)?;
    if !(1..=MAX_TEMPLATE_DEPTH).contains(&templates.max_depth) {
        return Err(invalid(
            "templates.max_depth",
            format!(
                "must be between 1 and {MAX_TEMPLATE_DEPTH}, got {}",
                templates.max_depth
            ),
        ));
    }
    at_least_one("templates.max_expanded_bytes", templates.max_expanded_bytes)?;
    at_least_one("templates.max_steps", templates.max_steps)?;
    at_least_one("templates.parse_timeout_ms", templates.parse_timeout_ms)?;
    at_least_one(
        "templates.max_concurrent_parses",
        templates.max_concurrent_parses,
    )?;

    let retention = &config.retention;
    at_least_one("retention.interval_seconds", retention.interval_seconds)?;
    batch_size("retention.batch_size", retention.batch_size)?;
    for namespace in retention.namespaces.keys() {
        identifier(
            &format!("retention.namespaces.{namespace}"),
            namespace,
            MAX_NAMESPACE_LEN,
        )?;
    }

    let log_level = &config.telemetry.log_level;
    if log_level.trim().is_empty() {
        return Err(invalid("telemetry.log_level", "must not be empty"));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(log_level) {
        return Err(invalid(
            "telemetry.log_level",
            format!("is not a valid tracing filter ({log_level:?}): {e}"),
        ));
    }
    let telemetry = &config.telemetry;
    if !(0.0..=1.0).contains(&telemetry.trace_sample_ratio) {
        return Err(invalid(
            "telemetry.trace_sample_ratio",
            "must be between 0.0 and 1.0",
        ));
    }
    let endpoint = telemetry.otlp_endpoint.trim();
    if telemetry.traces_enabled
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return Err(invalid(
            "telemetry.otlp_endpoint",
            format!("must be an http:// or https:// URL (got {endpoint:?})"),
        ));
    }
    if telemetry.trace_export_interval_ms == 0 {
        return Err(invalid(
            "telemetry.trace_export_interval_ms",
            "must be at least 1",
        ));
    }
    Ok(())
}
