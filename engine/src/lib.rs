//! tasker-engine: the model, store, queues, orchestration and worker host of tasker.
//!
//! See `ARCHITECTURE.md` at the repository root for the bird's-eye view.

pub mod api;
pub mod channel;
pub mod client;
pub mod config;
pub mod db;
pub mod handler;
pub mod migrate;
pub mod orchestration;
pub mod queue;
pub mod state;
pub mod step;
pub mod store;
pub mod telemetry;
pub mod template;
pub mod wake;
pub mod watch;
pub mod worker;
