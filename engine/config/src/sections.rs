//! The typed sections of the configuration, one struct per TOML component file,
//! with their defaults. The defaults equal `config/tasker/base/*.toml` (a test pins it).

use super::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How a reader learns that a queue has messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Poll the queue at the fallback interval only.
    Polling,
    /// Wait for LISTEN/NOTIFY wake-ups only.
    EventDriven,
    /// LISTEN/NOTIFY, plus a fallback poll for lost notifications.
    #[default]
    Hybrid,
}

/// What the stale-task sweep does with a task that made no progress for too long.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaleTaskAction {
    /// Re-run readiness for the task and enqueue what is ready.
    #[default]
    Reevaluate,
    /// Move the task to its error state.
    Error,
}

/// The log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// `[database]`: how to reach PostgreSQL, and where a private cluster lives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection URL (a secret). `None`: use the local default database
    /// (a server on the default socket, else the private cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret>,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long to wait for a pooled connection, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// Where a private PostgreSQL cluster is created when no server answers.
    /// A leading `~/` means the home directory (see [`DatabaseConfig::resolved_data_dir`]).
    pub data_dir: PathBuf,
    /// TCP port of the private cluster.
    pub private_cluster_port: u16,
    /// Name of the database to use (created if missing).
    pub database_name: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: 20,
            min_connections: 2,
            acquire_timeout_ms: 5_000,
            data_dir: PathBuf::from("~/.local/share/tasker/pgdata"),
            private_cluster_port: 54_329,
            database_name: "tasker".to_string(),
        }
    }
}

impl DatabaseConfig {
    /// `data_dir` with a leading `~/` replaced by `$HOME` (unchanged when `HOME`
    /// is unset or the path does not start with `~/`).
    pub fn resolved_data_dir(&self) -> PathBuf {
        match (self.data_dir.strip_prefix("~"), std::env::var_os("HOME")) {
            (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => self.data_dir.clone(),
        }
    }
}

/// `[queues]`: PGMQ settings shared by orchestrators and workers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// PGMQ visibility timeout of a read message: the step lease, in seconds.
    pub visibility_timeout_seconds: u32,
    /// Messages read per queue read.
    pub read_batch_size: u32,
    /// Fallback poll interval when no notification arrives, in milliseconds.
    pub poll_interval_ms: u64,
    /// Largest accepted message body, in bytes.
    pub max_message_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            visibility_timeout_seconds: 30,
            read_batch_size: 10,
            poll_interval_ms: 1_000,
            max_message_bytes: 1_048_576,
        }
    }
}

/// `[orchestration]`: the orchestrator's result loop and sweeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrchestrationConfig {
    /// How the orchestrator learns of new results.
    pub mode: Mode,
    /// Results read from the results queue at once.
    pub result_batch_size: u32,
    /// Fallback poll interval of the results queue, in milliseconds.
    pub fallback_poll_interval_ms: u64,
    /// A task with no progress for this long is stale, in seconds.
    pub stale_task_after_seconds: u64,
    /// What the stale sweep does with a stale task.
    pub stale_task_action: StaleTaskAction,
    /// How often the stale sweep runs, in seconds.
    pub stale_sweep_interval_seconds: u64,
    /// How often steps whose retry backoff ended are enqueued, in milliseconds.
    pub retry_sweep_interval_ms: u64,
    /// How often the orchestrator vacuums the queue and state tables that
    /// autovacuum has left behind, in seconds; 0 never.
    pub vacuum_interval_seconds: u64,
    /// An enqueued step that no live worker of its pool has been able to run
    /// for this long ends in error (kind `no_worker`), in seconds; 0 never.
    pub unserved_step_timeout_seconds: u64,
    /// How often the orchestrator fires due schedules, in milliseconds; 0:
    /// this orchestrator fires none (others still do).
    pub schedule_tick_interval_ms: u64,
}

impl Default for OrchestrationConfig {
    fn default() -> Self {
        OrchestrationConfig {
            mode: Mode::Hybrid,
            result_batch_size: 10,
            fallback_poll_interval_ms: 5_000,
            stale_task_after_seconds: 600,
            stale_task_action: StaleTaskAction::Reevaluate,
            stale_sweep_interval_seconds: 60,
            retry_sweep_interval_ms: 1_000,
            vacuum_interval_seconds: 10,
            unserved_step_timeout_seconds: 600,
            schedule_tick_interval_ms: 1_000,
        }
    }
}

/// `[worker]`: the worker host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Namespaces whose step queues this worker serves.
    pub namespaces: Vec<String>,
    /// Further pools (step queues) it serves, beyond its namespaces'.
    pub pools: Vec<String>,
    /// How often the worker refreshes its row in the worker registry, in
    /// seconds; three missed ones and it counts as gone.
    pub registry_heartbeat_seconds: u32,
    /// How many times a step may be taken over from a lost worker (its lease
    /// expired) before it ends in error, kind `worker_lost`.
    pub max_recoveries: u32,
    /// Steps run at the same time.
    pub concurrency: u32,
    /// Step messages read per queue read.
    pub batch_size: u32,
    /// How often a running step's lease is extended, in seconds.
    pub heartbeat_interval_seconds: u32,
    /// How long running steps may finish after a shutdown request, in seconds.
    pub shutdown_grace_seconds: u32,
    /// How the worker learns of new step messages.
    pub mode: Mode,
    /// Whether the worker applies a successful attempt itself, in the
    /// transaction that reports it (the step completes, its ready children are
    /// enqueued, the task is re-decided), rather than leaving it to an
    /// orchestrator's take. Failures always go to the orchestrator.
    pub apply_successes: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            namespaces: vec!["default".to_string()],
            pools: Vec::new(),
            registry_heartbeat_seconds: 5,
            max_recoveries: 10,
            concurrency: 8,
            batch_size: 10,
            heartbeat_interval_seconds: 10,
            shutdown_grace_seconds: 30,
            mode: Mode::Hybrid,
            apply_successes: true,
        }
    }
}

/// `[channels]`: capacities of the bounded in-process mpsc channels (messages).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelConfig {
    /// Commands sent to the orchestration command processor.
    pub command_buffer: usize,
    /// Task creation requests waiting to be initialized.
    pub task_requests: usize,
    /// Ready steps waiting to be sent to their namespace queue.
    pub step_enqueue: usize,
    /// Step results read from the results queue, waiting to be processed.
    pub step_results: usize,
    /// Tasks waiting to be finalized.
    pub finalization: usize,
    /// Step messages handed from the worker's reader to its handler pool.
    pub worker_dispatch: usize,
    /// Handler outcomes waiting to be reported by the worker.
    pub worker_results: usize,
    /// Fill level, in percent, above which a channel logs a saturation warning.
    pub saturation_warn_percent: u8,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            command_buffer: 1_000,
            task_requests: 1_000,
            step_enqueue: 1_000,
            step_results: 1_000,
            finalization: 500,
            worker_dispatch: 500,
            worker_results: 500,
            saturation_warn_percent: 80,
        }
    }
}

/// `[circuit_breakers]`: protection of calls to the database and handlers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Whether circuit breakers are used at all.
    pub enabled: bool,
    /// Consecutive failures that open a breaker.
    pub failure_threshold: u32,
    /// How long an open breaker waits before letting a trial call through, in milliseconds.
    pub reset_timeout_ms: u64,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            enabled: true,
            failure_threshold: 5,
            reset_timeout_ms: 30_000,
        }
    }
}

/// `[templates]`: what a template may cost to read, wherever it is read (the
/// API's template routes, `tasker template validate|apply`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplatesConfig {
    /// Largest template text (YAML or JSON), in bytes.
    pub max_bytes: u64,
    /// Deepest nesting of sequences and mappings, at most 128.
    pub max_depth: u32,
    /// Most YAML alias uses (`*name`) in one template; 0 refuses aliases.
    pub max_aliases: u32,
    /// Largest size a template may reach with its aliases replaced (scalar
    /// bytes plus 16 per value), in bytes.
    pub max_expanded_bytes: u64,
    /// Most steps in one template.
    pub max_steps: u32,
    /// Most dependencies (`depends_on` entries) in one template.
    pub max_edges: u32,
    /// Time budget of one template parse in the API (waiting for a parsing
    /// slot included), in milliseconds.
    pub parse_timeout_ms: u64,
    /// Template parses running at once in the API, each on a blocking thread.
    pub max_concurrent_parses: u32,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        TemplatesConfig {
            max_bytes: 1_048_576,
            max_depth: 64,
            max_aliases: 1_000,
            max_expanded_bytes: 16_777_216,
            max_steps: 1_000,
            max_edges: 5_000,
            parse_timeout_ms: 5_000,
            max_concurrent_parses: 2,
        }
    }
}

/// `[web]`: the HTTP admin API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Socket address to listen on (`host:port`; port 0 picks a free port).
    pub bind: String,
    /// Largest accepted request body (WASM component uploads included), in bytes.
    pub request_body_limit_bytes: u64,
    /// Time limit of one request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Refuse to register a template or create a task with a step that no
    /// live worker serves (422), instead of reporting it in the response.
    pub require_live_workers: bool,
    /// Time a client has to send a request's headers, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this many milliseconds.
    pub idle_timeout_ms: u64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: u32,
    /// Event streams (SSE) open at once, over all keys; more get 503.
    pub max_event_streams: u32,
    /// Event streams open at once per API key; more get 503.
    pub max_event_streams_per_key: u32,
    /// Bytes of task contexts or step results one listing may carry; past
    /// it a task list page ends early and a step list omits the rest.
    pub list_payload_limit_bytes: u64,
    /// `/metrics` needs an API key with `tasks:read` when true.
    pub metrics_requires_key: bool,
    /// `[web.auth]`: API authentication.
    pub auth: WebAuthConfig,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            bind: "127.0.0.1:8080".to_string(),
            request_body_limit_bytes: 16_777_216,
            request_timeout_ms: 30_000,
            require_live_workers: false,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 1024,
            max_event_streams: 512,
            max_event_streams_per_key: 32,
            list_payload_limit_bytes: 8_388_608,
            metrics_requires_key: false,
            auth: WebAuthConfig::default(),
        }
    }
}

/// `[web.auth]`: API authentication.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebAuthConfig {
    /// Whether requests must carry an API key.
    pub enabled: bool,
    /// A key accepted before any key is stored (a secret), to create the first ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_key: Option<Secret>,
}

impl Default for WebAuthConfig {
    fn default() -> Self {
        WebAuthConfig {
            enabled: true,
            bootstrap_key: None,
        }
    }
}

/// `[client]`: how the CLI and the Rust client reach the admin API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Base URL of the admin API (`http://host:port`).
    pub url: String,
    /// The API key sent as `Authorization: Bearer` (a secret); unset sends none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            url: "http://127.0.0.1:8080".to_string(),
            api_key: None,
        }
    }
}

/// `[telemetry]`: logs and metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// A `tracing` filter: a level (`info`) or directives (`info,tasker_worker=debug,tasker_orchestrator=debug`).
    pub log_level: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Whether metrics are recorded and exposed.
    pub metrics_enabled: bool,
    /// Whether spans are exported over OTLP (`docs/observability.md`). Off:
    /// tasks still carry a `traceparent`, nothing is sent anywhere.
    pub traces_enabled: bool,
    /// The OTLP/HTTP collector: a base URL (`/v1/traces` is appended) or the
    /// full traces URL.
    pub otlp_endpoint: String,
    /// The `service.name` spans carry; empty: the process's role
    /// (`tasker-server`, `tasker-worker`, `tasker-python`, ...).
    pub service_name: String,
    /// The share of new traces sampled, 0.0–1.0; a trace continued from a
    /// caller follows the caller's decision.
    pub trace_sample_ratio: f64,
    /// How often finished spans are sent, in milliseconds.
    pub trace_export_interval_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_level: "info".to_string(),
            log_format: LogFormat::Text,
            metrics_enabled: true,
            traces_enabled: false,
            otlp_endpoint: "http://127.0.0.1:4318".to_string(),
            service_name: String::new(),
            trace_sample_ratio: 1.0,
            trace_export_interval_ms: 1000,
        }
    }
}

/// `[wasm]`: the WebAssembly handler backend (uploads and the sandbox).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WasmConfig {
    /// Whether workers run uploaded WASM components for handler names not registered in-process.
    pub enabled: bool,
    /// Largest component accepted by `PUT /v1/components/{name}/{version}`, in bytes.
    pub max_component_bytes: u64,
    /// Largest linear memory of one instance, in bytes.
    pub memory_limit_bytes: u64,
    /// Most elements of one table.
    pub table_elements_limit: u32,
    /// Most core instances one call may create (componentize-py guests need ≥ 100).
    pub instances_limit: u32,
    /// Most tables one call may create.
    pub tables_limit: u32,
    /// Most linear memories one call may create.
    pub memories_limit: u32,
    /// Largest result a guest may return, in bytes of JSON text.
    pub max_result_bytes: u64,
    /// Guest stdout and stderr kept per call (each), in bytes; the rest is dropped.
    pub max_output_bytes: u64,
    /// Epoch tick: granularity of deadlines and cancellation, in milliseconds.
    pub epoch_tick_ms: u64,
    /// Calls running at once in one process (pooling allocator slots).
    pub max_concurrent_calls: u32,
    /// Where compiled components are cached; empty: no disk cache. `~/` is the home directory.
    pub cache_dir: PathBuf,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            enabled: true,
            max_component_bytes: 64 << 20,
            memory_limit_bytes: 256 << 20,
            table_elements_limit: 100_000,
            instances_limit: 200,
            tables_limit: 200,
            memories_limit: 20,
            max_result_bytes: 16 << 20,
            max_output_bytes: 64 << 10,
            epoch_tick_ms: 10,
            max_concurrent_calls: 32,
            cache_dir: PathBuf::from("~/.cache/tasker/wasm"),
        }
    }
}
