//! Bodies of the handler-log route (`GET /v1/tasks/{id}/steps/{step}/logs`):
//! what a step's handler logged, attempt by attempt.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `GET /v1/tasks/{id}/steps/{step}/logs`: a step's handler logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepLogs {
    pub task_id: Uuid,
    /// The step's name.
    pub step: String,
    /// The attempts that logged something, oldest first (an attempt that
    /// logged nothing has no entry).
    pub attempts: Vec<AttemptLogBody>,
}

/// What one attempt's handler logged (capped per attempt: 1,000 lines,
/// 64 KiB of text, 4 KiB a line; `dropped` counts what the caps left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptLogBody {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The worker that ran the attempt.
    pub worker_id: String,
    /// When the worker stored the lines (the attempt's end).
    pub created_at: DateTime<Utc>,
    pub lines: Vec<LogLineBody>,
    /// Lines not kept because a cap was reached.
    pub dropped: u64,
}

/// One line a handler logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLineBody {
    pub at: DateTime<Utc>,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}
