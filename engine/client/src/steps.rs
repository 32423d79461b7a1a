//! The step routes (`/v1/tasks/{id}/steps/{step}` and its actions).

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{Client, ClientError};
use tasker_api_types::{ActionRequest, ActionResult, CompleteStepRequest, Step, StepTransition};

impl Client {
    pub(crate) fn step_path<'a>(
        task: &'a str,
        step: &'a str,
        action: Option<&'a str>,
    ) -> Vec<&'a str> {
        let mut p = vec!["v1", "tasks", task, "steps", step];
        p.extend(action);
        p
    }

    async fn step_action(
        &self,
        task: Uuid,
        step: &str,
        action: &str,
        body: &impl Serialize,
    ) -> Result<ActionResult, ClientError> {
        let task = task.to_string();
        let req = self
            .request(Method::POST, &Self::step_path(&task, step, Some(action)))
            .json(body);
        Self::call(req).await
    }

    /// `GET /v1/tasks/{id}/steps/{step}` (step id or name).
    pub async fn get_step(&self, task: Uuid, step: &str) -> Result<Step, ClientError> {
        let task = task.to_string();
        Self::call(self.request(Method::GET, &Self::step_path(&task, step, None))).await
    }

    /// `POST /v1/tasks/{id}/steps/{step}/retry`: retries a failed step.
    pub async fn retry_step(
        &self,
        task: Uuid,
        step: &str,
        reason: Option<String>,
    ) -> Result<ActionResult, ClientError> {
        self.step_action(task, step, "retry", &ActionRequest { reason })
            .await
    }

    /// `POST /v1/tasks/{id}/steps/{step}/resolve`: resolves a step manually.
    pub async fn resolve_step(
        &self,
        task: Uuid,
        step: &str,
        reason: Option<String>,
    ) -> Result<ActionResult, ClientError> {
        self.step_action(task, step, "resolve", &ActionRequest { reason })
            .await
    }

    /// `POST /v1/tasks/{id}/steps/{step}/complete`: completes a step with `result`.
    pub async fn complete_step(
        &self,
        task: Uuid,
        step: &str,
        result: Value,
        reason: Option<String>,
    ) -> Result<ActionResult, ClientError> {
        self.step_action(
            task,
            step,
            "complete",
            &CompleteStepRequest { result, reason },
        )
        .await
    }

    /// `GET /v1/tasks/{id}/steps/{step}/transitions`: the step's history.
    pub async fn step_transitions(
        &self,
        task: Uuid,
        step: &str,
    ) -> Result<Vec<StepTransition>, ClientError> {
        let task = task.to_string();
        let req = self.request(
            Method::GET,
            &Self::step_path(&task, step, Some("transitions")),
        );
        Self::call(req).await
    }
}
