//! Creating tasks and reading them back.
//!
//! Creation is one statement, so one transaction and one round trip: the task,
//! its steps, edges, the first transitions and a queue message for every root
//! step commit together or not at all. [`create_batch`] creates many tasks in
//! one transaction (one commit for all).

mod batch;
mod create;
mod read;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use batch::{create_batch, MAX_BATCH, MAX_BATCH_STEPS};
pub use create::{create, create_at, create_on};
pub use read::*;

use super::StoreError;

/// A request to create a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub namespace: String,
    pub name: String,
    /// Template version; `None` means the highest registered version.
    #[serde(default)]
    pub version: Option<String>,
    /// The task's input; must satisfy the template's `input_schema`.
    #[serde(default = "empty_object")]
    pub context: Value,
    #[serde(default)]
    pub priority: i32,
    /// Creating twice with the same key (per namespace) returns the first task.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The W3C `traceparent` of the submission (the API takes it from the
    /// request's `traceparent` header): the task's trace continues it. `None`
    /// (or a malformed value) starts a new trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// A delayed start of a new task ([`create_at`]): no step is claimed before
/// `run_at`, or before now + `delay_seconds`; neither means at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// At most [`MAX_DELAY`] ahead; up to [`PAST_TOLERANCE`] in the past means now.
    pub run_at: Option<DateTime<Utc>>,
    /// Excludes `run_at`.
    pub delay_seconds: Option<u64>,
}

/// Farthest ahead a delayed start may be: a year.
pub const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// How far in the past a `run_at` may be (clock skew), meaning "now".
pub const PAST_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(60);

impl Start {
    /// When the task's steps may first run, `None` for at once: `run_at` or
    /// now + `delay_seconds` (not both), at most [`MAX_DELAY`] ahead; a
    /// `run_at` up to [`PAST_TOLERANCE`] in the past is now, earlier is refused.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let invalid = |field: &str, reason: String| StoreError::InvalidRequest {
            field: field.into(),
            reason,
        };
        let max = chrono::Duration::from_std(MAX_DELAY).unwrap_or(chrono::Duration::MAX);
        let tolerance = chrono::Duration::from_std(PAST_TOLERANCE).unwrap_or_default();
        let (field, at) = match (self.run_at, self.delay_seconds) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "run_at",
                    "and delay_seconds exclude each other: give one".into(),
                ))
            }
            (None, None) => return Ok(None),
            (Some(at), None) => ("run_at", at),
            (None, Some(secs)) => {
                let delay = i64::try_from(secs)
                    .ok()
                    .and_then(chrono::Duration::try_seconds)
                    .filter(|d| *d <= max)
                    .ok_or_else(|| {
                        invalid(
                            "delay_seconds",
                            format!("must be at most {} seconds", MAX_DELAY.as_secs()),
                        )
                    })?;
                ("delay_seconds", now + delay)
            }
        };
        if at > now + max {
            return Err(invalid(
                field,
                format!(
                    "must be at most {} days ahead",
                    MAX_DELAY.as_secs() / 86_400
                ),
            ));
        }
        if at < now - tolerance {
            return Err(invalid(
                field,
                format!(
                    "is {}s in the past (at most {}s is accepted, meaning now)",
                    (now - at).num_seconds(),
                    PAST_TOLERANCE.as_secs()
                ),
            ));
        }
        Ok((at > now).then_some(at))
    }
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The outcome of [`create`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = CreatedTask, description = "The outcome of creating a task.")
)]
pub struct Created {
    pub task_id: Uuid,
    /// False when an earlier task with the same idempotency key was returned.
    pub created: bool,
    /// Steps of the task's template that no live worker serves (filled in
    /// by the API; [`create`] leaves it empty). Their steps wait, and end in
    /// error after `orchestration.unserved_step_timeout_seconds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unserved: Vec<crate::worker::UnservedStep>,
}

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
