//! What a handler sees and what it returns: the step context and the outcome,
//! and the result message a worker sends to the orchestration queue.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Everything a handler needs to run one attempt of one step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepContext {
    pub task_id: Uuid,
    pub step_id: Uuid,
    pub namespace: String,
    pub template: String,
    pub step_name: String,
    pub handler: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The task's input context.
    pub input: Value,
    /// Results of this step's parents, by parent step name.
    pub parent_results: BTreeMap<String, Value>,
    /// The handler configuration from the template.
    pub config: Value,
    pub timeout_seconds: u32,
}

/// How a handler attempt ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Done; the value becomes the step's result.
    Success { result: Value },
    /// Failed; `retryable` says whether another attempt may help.
    Failure(StepError),
}

/// A failed attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepError {
    pub message: String,
    pub retryable: bool,
    /// Earliest time to retry, if the handler knows better than the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// A short machine-readable kind: `handler`, `timeout`, `panic`,
    /// `no_handler`, `attempts_exhausted`, `trap`, ...
    pub kind: String,
}

impl Outcome {
    pub fn success(result: Value) -> Outcome {
        Outcome::Success { result }
    }
    pub fn retryable(message: impl Into<String>) -> Outcome {
        Outcome::Failure(StepError {
            message: message.into(),
            retryable: true,
            retry_after_ms: None,
            kind: "handler".into(),
        })
    }
    pub fn permanent(message: impl Into<String>) -> Outcome {
        Outcome::Failure(StepError {
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
            kind: "handler".into(),
        })
    }
    /// A failure of a given kind, e.g. a timeout.
    pub fn failure(kind: &str, message: impl Into<String>, retryable: bool) -> Outcome {
        Outcome::Failure(StepError {
            message: message.into(),
            retryable,
            retry_after_ms: None,
            kind: kind.into(),
        })
    }
    /// Sets the retry-after hint of a failure.
    pub fn retry_after(mut self, after: Duration) -> Outcome {
        if let Outcome::Failure(e) = &mut self {
            e.retry_after_ms = Some(after.as_millis() as u64);
        }
        self
    }
}

/// The message a worker sends to the orchestration results queue (`tasker_store::queue::RESULTS_QUEUE`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResultMessage {
    pub step_id: Uuid,
    pub task_id: Uuid,
    /// The attempt this outcome belongs to.
    pub attempt: u32,
    pub outcome: Outcome,
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl StepError {
    /// A failure another attempt may fix.
    pub fn retryable(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: true,
            retry_after_ms: None,
            kind: "handler".into(),
        }
    }
    /// A failure no retry will fix.
    pub fn permanent(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
            kind: "handler".into(),
        }
    }
    /// Sets the kind.
    pub fn with_kind(mut self, kind: &str) -> StepError {
        self.kind = kind.into();
        self
    }
}
