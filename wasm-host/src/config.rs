//! The host's configuration: limits and sizes of a [`WasmHost`](crate::WasmHost).

use std::path::PathBuf;
use std::time::Duration;

/// Bytes of each pooled linear memory and table kept resident (reset in
/// place, not decommitted) between calls, where the kernel has PAGEMAP_SCAN.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// [`KEEP_RESIDENT_BYTES`] on Linux ≥ 6.7 (PAGEMAP_SCAN: only dirtied pages
/// are reset); else 0, wasmtime's default (`madvise`), because without the
/// scan every call would `memset` all of the kept bytes.
fn keep_resident_bytes() -> usize {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if has_pagemap_scan(&release) {
        KEEP_RESIDENT_BYTES
    } else {
        0
    }
}

/// Whether a Linux release string (`6.18.44-…`) is 6.7 or later.
fn has_pagemap_scan(release: &str) -> bool {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (6, 7),
        _ => false,
    }
}

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
    /// interruption, and the pooling allocator sized by the limits, resetting
    /// slots in place between calls (no `madvise`, no page faults on reuse).
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
            .max_component_instance_size(16 << 20)
            // Reset a slot's memory and tables in place when its call ends
            // (only the pages the call dirtied, found with Linux's
            // PAGEMAP_SCAN; older kernels keep the `madvise` default) instead of `madvise`-ing them
            // away: the next call neither page-faults nor pays the
            // cross-CPU TLB flushes. Isolation is unchanged: every byte
            // goes back to the component's initial image before reuse.
            .linear_memory_keep_resident(keep_resident_bytes())
            .table_keep_resident(keep_resident_bytes())
            .pagemap_scan(wasmtime::Enabled::Auto);
        cfg.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::has_pagemap_scan;

    #[test]
    fn pagemap_scan_needs_linux_6_7() {
        assert!(has_pagemap_scan("6.18.44-fc-v1252\n"));
        assert!(has_pagemap_scan("6.7.0"));
        assert!(has_pagemap_scan("7.0.1"));
        assert!(!has_pagemap_scan("6.6.30-generic"));
        assert!(!has_pagemap_scan("5.15.0-105-generic"));
        assert!(!has_pagemap_scan(""));
    }
}
