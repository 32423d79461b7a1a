//! tasker's benchmarks, out of the crates they measure.
//!
//! - [`workflow`]: `tasker bench`: sequential latency and throughput of real
//!   workflows (an orchestrator and a worker in this process), next to the
//!   raw PGMQ floor measured in the same run; [`processes`] (`--processes`):
//!   the same with `tasker server` and `tasker worker` as processes and an
//!   HTTP client;
//! - [`wasm`]: `tasker bench wasm`: the WASM backend's dispatch and loading
//!   costs next to plain wasmtime ([`raw_floor`]);
//! - [`dispatch`]: the C ABI's handler backends, a no-op step each, without a
//!   database (`cargo run --release -p tasker-bench --example dispatch_bench`).
//!
//! The two database benchmarks run in a database of their own ([`database`]):
//! by default a scratch database created on the configured server and dropped
//! afterwards; a database named with [`database::Target::Url`] is used only if
//! it holds nothing the benchmark did not put there, and nothing in it is ever
//! truncated or purged. Figures mean something only in a release build.

pub mod database;
pub mod dispatch;
pub mod processes;
pub mod raw_floor;
mod stats;
pub mod wasm;
pub mod workflow;

pub use database::Target;
