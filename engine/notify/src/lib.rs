//! tasker-notify: who gets woken when something changes.
//!
//! One [`Wakeups`] value per process and database is passed to whatever reads
//! or writes there (no process-wide state). Writers announce what they
//! committed ([`Wakeups::announce`] of the
//! [`Changed`](tasker_model::change::Changed) a store write returns); queue
//! readers wait on a [`wake::Wake`] ([`Wakeups::listen`]); task watchers
//! ([`watch::TaskWatcher::start`], given a `Wakeups`) follow task state
//! changes across processes. LISTEN sessions survive the database: they
//! reconnect by themselves, marked for other processes on every connection,
//! and wake whoever they serve when they do (`session.rs`); the process's
//! view of whether the database answers is [`Wakeups::database`].
//!
//! Invariant: nothing here changes tasker's data (its only statements are
//! LISTEN, NOTIFY and reads, the task reads through `tasker-store`); a lost
//! wake-up costs at most one poll interval, never a step.

mod session;
mod waiters;
pub mod wake;
mod wakeups;
pub mod watch;

pub use wakeups::{Wakeups, TASK_EVENTS};
