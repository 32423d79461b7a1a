//! tasker-engine: the model, store, queues, orchestration and worker host of tasker.
//!
//! See `ARCHITECTURE.md` at the repository root for the bird's-eye view.

pub mod config;
