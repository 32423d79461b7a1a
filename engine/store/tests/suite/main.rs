//! The store's integration tests against a real PostgreSQL, one module per
//! subject. One test binary for the crate: each binary links the whole
//! dependency tree again, so one instead of eleven saves CI minutes.
//! Each test still gets its own database (`#[sqlx::test]`).

mod batch;
mod concurrency;
mod flow;
mod limits;
mod plans;
mod report_apply;
mod retention;
mod squashed_history;
mod step_log;
mod store;
mod time;
mod trace;
