//! Bodies of the signal route (`POST /v1/tasks/{id}/signals/{name}`,
//! `docs/waits.md`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/tasks/{id}/signals/{name}`: the signal's payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendSignalRequest {
    /// Any JSON value: the result of the step that waits for the signal, which
    /// its children see as their parent's result. Default `null`.
    #[serde(default)]
    #[schema(value_type = Object, nullable)]
    pub payload: Value,
}

/// What a signal did: taken by its waiting step (which completed), or
/// buffered until that step begins to wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SignalResult {
    /// The recorded signal.
    pub signal_id: Uuid,
    pub task_id: Uuid,
    /// The signal's name.
    pub name: String,
    /// The step that waits for it (`wait_for.signal`).
    pub step: String,
    pub step_id: Uuid,
    /// True: the step was waiting, took the signal and completed (200).
    /// False: the signal is buffered and taken when the step begins to wait (202).
    pub consumed: bool,
    /// The step's state after the signal.
    pub step_state: String,
    /// The task's state after the signal.
    pub task_state: String,
}
