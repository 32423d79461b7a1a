//! The orchestrator's integration tests, the whole stack in process against
//! a real PostgreSQL, one module per subject. One test binary for the crate:
//! each binary links the whole dependency tree again, so one instead of
//! twelve saves CI minutes. Each test still gets its own database.

mod breakers;
mod concurrency;
mod dlq;
mod flow;
mod lost_workers;
mod operator;
mod orchestration;
mod pools;
mod retention;
mod step_logs;
mod time;
mod waits;
