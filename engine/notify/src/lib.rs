//! tasker-notify: who gets woken when something changes.
//!
//! Queue readers wait on [`wake::Wake`]; writers announce what they committed
//! with [`wake::hint`] and [`wake::task_event`]. Task watchers
//! ([`watch::TaskWatcher`]) follow task state changes across processes.
//!
//! Invariant: nothing here changes tasker's data (its only statements are
//! LISTEN, NOTIFY and reads); a lost wake-up costs at most one poll interval,
//! never a step.

pub mod wake;
pub mod watch;
