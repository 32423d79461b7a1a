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

impl HostConfig {
    /// The wasmtime configuration of a host with these limits: epoch
    /// interruption, and the pooling allocator sized by the limits.
    pub fn engine_config(&self) -> wasmtime::Config {
        let mut cfg = wasmtime::Config::new();
        cfg.epoch_interruption(true);
        let slots = self.max_concurrent_calls.max(1);
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(self.instances_limit as u32))
            .total_memories(slots.saturating_mul(self.memories_limit as u32))
            .total_tables(slots.saturating_mul(self.tables_limit as u32))
            .total_stacks(slots)
            .max_core_instances_per_component(self.instances_limit as u32)
            .max_memories_per_component(self.memories_limit as u32)
            .max_tables_per_component(self.tables_limit as u32)
            .max_memory_size(self.memory_limit_bytes)
            .table_elements(self.table_elements_limit)
            .max_core_instance_size(16 << 20)
            .max_component_instance_size(16 << 20);
        cfg.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        cfg
    }
}
