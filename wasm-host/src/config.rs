//! The host's configuration: limits and sizes of a [`WasmHost`](crate::WasmHost).

use std::path::PathBuf;
use std::time::Duration;

/// Limits and sizes of a [`WasmHost`](crate::WasmHost). Every field is a config key
/// (`[wasm]` in the engine's configuration).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Largest linear memory of one instance, in bytes.
    pub memory_limit_bytes: usize,
    /// Most elements of one table.
    pub table_elements_limit: usize,
    /// Most core instances per call (componentize-py guests need ≥ 100).
    pub instances_limit: usize,
    /// Most tables per call.
    pub tables_limit: usize,
    /// Most linear memories per call.
    pub memories_limit: usize,
    /// Largest result (JSON text) a guest may return, in bytes.
    pub max_result_bytes: usize,
    /// Guest stdout and stderr kept per call, each, in bytes; the rest is dropped.
    pub max_output_bytes: usize,
    /// Epoch tick: the granularity of deadlines and cancellation.
    pub epoch_tick: Duration,
    /// Calls running at once (the pooling allocator's slots).
    pub max_concurrent_calls: u32,
    /// Where compiled components are cached; `None`: no disk cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            memory_limit_bytes: 256 << 20,
            table_elements_limit: 100_000,
            instances_limit: 200,
            tables_limit: 200,
            memories_limit: 20,
            max_result_bytes: 16 << 20,
            max_output_bytes: 64 << 10,
            epoch_tick: Duration::from_millis(10),
            max_concurrent_calls: 32,
            cache_dir: None,
        }
    }
}
