//! The handler-log route (`GET /v1/tasks/{id}/steps/{step}/logs`).

use reqwest::Method;
use uuid::Uuid;

use crate::{Client, ClientError};
use tasker_api_types::StepLogs;

impl Client {
    /// `GET /v1/tasks/{id}/steps/{step}/logs` (step id or name): what the
    /// step's handler logged, attempt by attempt.
    pub async fn step_logs(&self, task: Uuid, step: &str) -> Result<StepLogs, ClientError> {
        let task = task.to_string();
        let req = self.request(Method::GET, &Self::step_path(&task, step, Some("logs")));
        Self::call(req).await
    }
}
