//! What a handler sees and what it returns: the step context and the outcome,
//! the result message a worker sends to the orchestration queue, the error
//! kinds every runtime records ([`kind`], documented in `docs/error-kinds.md`)
//! and the rule for JSON that tasker cannot carry exactly ([`parse_json_exact`]).
//!
//! The JSON rule is in `step/exact.rs`, the kinds in `step/kind.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

mod exact;
pub mod kind;
pub mod log;

pub use exact::{check_value, parse_json_exact, JsonProblem};

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
    /// How many of the attempts so far ended because their worker was lost
    /// (the lease expired) rather than by the handler: they do not count
    /// against `max_attempts`. `attempt - recoveries` is the handler's own try.
    #[serde(default)]
    pub recoveries: u32,
    /// The W3C `traceparent` of this attempt's span (`00-<trace id>-<span
    /// id>-<flags>`): a handler's own spans and logs join the task's trace
    /// with it. `None` for contexts made outside a worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The attempt's own log ([`log::AttemptLog`]): what the handler writes
    /// here is stored with the attempt (`tasker step logs`).
    #[serde(skip)]
    pub log: log::AttemptLog,
}

impl StepContext {
    /// The trace id of [`StepContext::traceparent`] (32 hex digits).
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent.as_deref().and_then(|t| t.get(3..35))
    }
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
    /// A short machine-readable kind, one of [`kind`] (`handler`, `exception`,
    /// `result`, `timeout`, `no_handler`, ...); `docs/error-kinds.md` says
    /// when each is recorded.
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
            kind: kind::HANDLER.into(),
        })
    }
    pub fn permanent(message: impl Into<String>) -> Outcome {
        Outcome::Failure(StepError {
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
            kind: kind::HANDLER.into(),
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
    /// The `traceparent` of the attempt's span: the orchestrator's span for
    /// applying this result is its child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl StepError {
    /// A failure another attempt may fix.
    pub fn retryable(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: true,
            retry_after_ms: None,
            kind: kind::HANDLER.into(),
        }
    }
    /// A failure no retry will fix.
    pub fn permanent(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
            kind: kind::HANDLER.into(),
        }
    }
    /// Sets the kind.
    pub fn with_kind(mut self, kind: &str) -> StepError {
        self.kind = kind.into();
        self
    }
}

impl Outcome {
    /// This outcome, unless it is a success whose result tasker cannot store
    /// ([`check_value`]): then a permanent failure of kind [`kind::RESULT`]
    /// naming `step_name` and the value's path. The worker applies it to every
    /// outcome; a `Value` holds no number tasker would change, so only U+0000
    /// in a string can be found here (JSON text is checked by [`parse_json_exact`]).
    pub fn checked(self, step_name: &str) -> Outcome {
        match &self {
            Outcome::Success { result } => match check_value(result) {
                Ok(()) => self,
                Err(problem) => Outcome::Failure(StepError::result(step_name, &problem)),
            },
            Outcome::Failure(_) => self,
        }
    }
}

impl StepError {
    /// The permanent failure (kind [`kind::RESULT`]) of step `step_name`, whose
    /// handler returned a value tasker cannot store as it is.
    pub fn result(step_name: &str, problem: &JsonProblem) -> StepError {
        let message = match problem {
            JsonProblem::Syntax(detail) => {
                format!("step '{step_name}' returned a result that is not JSON: {detail}")
            }
            JsonProblem::Inexact { .. } => {
                format!(
                    "step '{step_name}' returned a result tasker cannot store exactly {problem}"
                )
            }
        };
        StepError {
            message,
            retryable: false,
            retry_after_ms: None,
            kind: kind::RESULT.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_result_that_cannot_be_stored_fails_the_step_naming_it() {
        let ok = Outcome::success(json!({"a": ["x"]}));
        assert_eq!(ok.clone().checked("s"), ok);
        let out = Outcome::success(json!({"a": ["x", "nul\u{0}"]})).checked("sum");
        let Outcome::Failure(e) = out else {
            panic!("expected a failure")
        };
        assert_eq!((e.kind.as_str(), e.retryable), (kind::RESULT, false));
        assert!(
            e.message.contains("step 'sum'") && e.message.contains("$.a[1]"),
            "{}",
            e.message
        );
        let problem = parse_json_exact(r#"{"total": 18446744073709551616}"#).unwrap_err();
        let e = StepError::result("sum", &problem);
        assert_eq!(
            e.message,
            "step 'sum' returned a result tasker cannot store exactly at $.total: the integer \
             18446744073709551616 is outside the range tasker keeps exactly \
             (-9223372036854775808 to 18446744073709551615); send larger integers as strings"
        );
        let e = StepError::result("sum", &parse_json_exact("{").unwrap_err());
        assert!(e
            .message
            .starts_with("step 'sum' returned a result that is not JSON: "));
    }

    #[test]
    fn handler_failures_have_one_kind_and_every_kind_is_documented() {
        assert_eq!(StepError::retryable("x").kind, kind::HANDLER);
        assert_eq!(StepError::permanent("x").kind, kind::HANDLER);
        let mut unique = kind::ALL.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), kind::ALL.len());
        let doc = include_str!("../../../docs/error-kinds.md");
        let documented: Vec<&str> = doc
            .lines()
            .skip_while(|l| !l.starts_with("| kind |"))
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        assert_eq!(
            documented,
            kind::ALL,
            "docs/error-kinds.md lists the kinds of `kind::ALL`, in order"
        );
    }
}
