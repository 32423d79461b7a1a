//! Sending spans to an OpenTelemetry collector over OTLP/HTTP (protobuf).
//!
//! [`start`] installs the process's exporter from `[telemetry]`: a batch
//! processor on its own thread (no async runtime needed, so libtasker's host
//! programs export too), sending every `trace_export_interval_ms`.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::global;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use tasker_config::TelemetryConfig;

/// Why spans cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The OTLP exporter could not be built (e.g. the endpoint is not a URL).
    #[error("telemetry.otlp_endpoint {endpoint:?}: cannot export spans there: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// The process's span export, while it runs. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Exporting {
    provider: SdkTracerProvider,
    endpoint: String,
}

impl Exporting {
    /// Where spans go (the OTLP traces URL).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends the spans finished so far and waits for the collector (a
    /// process calls this before it exits: spans still queued are lost).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, endpoint = %self.endpoint, "sending the last spans failed");
        }
    }
}

static EXPORTING: OnceLock<Exporting> = OnceLock::new();

/// The traces URL for a configured endpoint: a base URL gets `/v1/traces`.
pub fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.ends_with("/v1/traces") {
        endpoint.to_string()
    } else {
        format!("{endpoint}/v1/traces")
    }
}

/// Starts exporting spans when `config.traces_enabled`, as `role` (the
/// `service.name` unless `config.service_name` is set). `Ok(None)` when
/// traces are off. A process exports to one place: a second call returns the
/// export already running.
pub fn start(config: &TelemetryConfig, role: &str) -> Result<Option<Exporting>, StartError> {
    if !config.traces_enabled {
        return Ok(None);
    }
    if let Some(running) = EXPORTING.get() {
        return Ok(Some(running.clone()));
    }
    let endpoint = traces_url(&config.otlp_endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint.clone())
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| StartError::Exporter {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        })?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_millis(
                    config.trace_export_interval_ms.max(1),
                ))
                .with_max_queue_size(8192)
                .build(),
        )
        .build();
    let service = if config.service_name.trim().is_empty() {
        role.to_string()
    } else {
        config.service_name.trim().to_string()
    };
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.trace_sample_ratio.clamp(0.0, 1.0),
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service.clone())
                .build(),
        )
        .build();
    let exporting = EXPORTING.get_or_init(|| {
        global::set_tracer_provider(provider.clone());
        tracing::info!(endpoint = %endpoint, service = %service, "exporting spans over OTLP/HTTP");
        Exporting { provider, endpoint }
    });
    Ok(Some(exporting.clone()))
}

/// The export running in this process, if any.
pub fn running() -> Option<Exporting> {
    EXPORTING.get().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_traces_path() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c/v1/traces"), "http://c/v1/traces");
    }

    #[test]
    fn off_by_default() {
        let config = TelemetryConfig::default();
        assert!(start(&config, "test").expect("off").is_none());
    }
}
