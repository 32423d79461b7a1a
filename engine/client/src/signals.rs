//! The signal route (`POST /v1/tasks/{id}/signals/{name}`, `docs/waits.md`).

use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use crate::{Client, ClientError};
use tasker_api_types::{SendSignalRequest, SignalResult};

impl Client {
    /// `POST /v1/tasks/{id}/signals/{name}`: sends signal `name` with
    /// `payload` to a task. `consumed` in the answer says whether the waiting
    /// step took it (and completed) or it is buffered until the step waits.
    pub async fn send_signal(
        &self,
        task: Uuid,
        name: &str,
        payload: Value,
    ) -> Result<SignalResult, ClientError> {
        let path = ["v1", "tasks", &task.to_string(), "signals", name];
        let body = SendSignalRequest { payload };
        Self::call(self.request(Method::POST, &path).json(&body)).await
    }
}
