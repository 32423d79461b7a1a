//! tasker-store: tasker's PostgreSQL. The pool and the private cluster
//! ([`db`]), PGMQ queues ([`queue`]), migrations ([`migrate`]) and every
//! statement that reads or writes tasker's tables (those every step runs in
//! `src/sql/*.sql`, see `sql.rs`).
//!
//! Invariants: SQL lives here and nowhere else; every multi-row change is one
//! transaction, and a state change commits with the messages it causes. The
//! store never wakes anyone: a write that sent messages or moved a task
//! returns a [`Changed`](tasker_model::change::Changed) saying so, and the
//! caller announces it after the commit (`tasker_notify::Wakeups::announce`).

pub mod analytics;
pub mod api_key;
pub mod archive;
pub mod component;
pub mod concurrency;
pub mod db;
pub mod dlq;
pub mod evaluate;
pub mod limit;
pub mod migrate;
pub mod operator;
pub mod pause;
pub mod queue;
pub mod recovery;
pub mod result;
pub mod retention;
pub mod retry;
pub mod schedule;
pub mod signal;
mod sql;
pub mod step;
pub mod step_log;
pub mod take;
pub mod task;
pub mod template;
pub mod transition;
pub mod vacuum;
pub mod wait;
pub mod worker;

use uuid::Uuid;

use crate::queue::QueueError;
use tasker_model::template::TemplateError;
pub use transition::{Cause, StoreTransitionError};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("template {key} is not registered")]
    TemplateNotFound { key: String },
    #[error("namespace '{0}' is not registered (register a template in it first)")]
    NamespaceNotFound(String),
    #[error("template {key} is already registered with a different definition; templates are immutable, register a new version")]
    TemplateConflict { key: String },
    #[error("task input rejected by {key}: {source}")]
    InputRejected {
        key: String,
        #[source]
        source: TemplateError,
    },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("task {0} not found")]
    TaskNotFound(Uuid),
    #[error("step {0} not found")]
    StepNotFound(Uuid),
    #[error("schedule {0} not found")]
    ScheduleNotFound(Uuid),
    #[error("a schedule named '{name}' exists already in namespace '{namespace}'")]
    ScheduleConflict { namespace: String, name: String },
    #[error("processing the result of step {step} failed and was rolled back: {reason}")]
    ResultRolledBack { step: Uuid, reason: String },
    #[error("invalid request: {field} {reason}")]
    InvalidRequest { field: String, reason: String },
    /// One task of a batch was refused ([`task::create_batch`]): nothing of
    /// the batch was written.
    #[error("tasks[{index}]: {source}")]
    InBatch {
        index: usize,
        #[source]
        source: Box<StoreError>,
    },
    #[error("{0} is not running")]
    Unavailable(&'static str),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Transition(#[from] StoreTransitionError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl From<tasker_model::state::TransitionError> for StoreError {
    fn from(e: tasker_model::state::TransitionError) -> Self {
        StoreError::Transition(e.into())
    }
}
