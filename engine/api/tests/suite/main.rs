//! The HTTP admin API against a real server and database, one module per
//! subject. One test binary (each binary links the whole dependency tree
//! again); `hostile.rs` stays a binary of its own because it measures the
//! process's memory. Each test still gets its own database.

mod api;
mod batch;
mod fidelity;
mod hostile_http;
mod retention;
mod signals;
mod step_logs;
mod workers;
