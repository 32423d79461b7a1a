//! tasker-model: what a task is, without doing anything to one.
//!
//! The state machines of tasks and steps ([`state`]), templates parsed,
//! validated and laid out as a dependency graph ([`template`]), what a handler
//! sees and returns ([`step`]), the bounded in-process channels every actor
//! uses ([`channel`]), circuit breakers ([`breaker`]) and the metrics the
//! engine records ([`telemetry`]).
//!
//! Invariant: this crate does no I/O beyond reading template files it is
//! handed; no database, no network, no process-wide state but the metrics
//! facade, the channel saturation gauges and the breakers.

pub mod breaker;
pub mod change;
pub mod channel;
pub mod state;
pub mod step;
pub mod telemetry;
pub mod template;
pub mod trace;
