//! The schedule routes (`/v1/schedules`).

use reqwest::Method;
use uuid::Uuid;

use crate::{Client, ClientError, REQUEST_TIMEOUT};
use tasker_api_types::{CreateScheduleRequest, Schedule, SchedulePage};

impl Client {
    /// `POST /v1/schedules`.
    pub async fn create_schedule(
        &self,
        req: &CreateScheduleRequest,
    ) -> Result<Schedule, ClientError> {
        Self::call(self.request(Method::POST, &["v1", "schedules"]).json(req)).await
    }

    /// `GET /v1/schedules`: one page, of `namespace` when given, after `cursor`.
    pub async fn list_schedules(
        &self,
        namespace: Option<&str>,
        cursor: Option<Uuid>,
    ) -> Result<SchedulePage, ClientError> {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(ns) = namespace {
            q.push(("namespace", ns.to_string()));
        }
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        Self::call(self.request(Method::GET, &["v1", "schedules"]).query(&q)).await
    }

    /// `GET /v1/schedules/{schedule_id}`.
    pub async fn get_schedule(&self, id: Uuid) -> Result<Schedule, ClientError> {
        Self::call(self.request(Method::GET, &["v1", "schedules", &id.to_string()])).await
    }

    /// `POST /v1/schedules/{schedule_id}/pause`.
    pub async fn pause_schedule(&self, id: Uuid) -> Result<Schedule, ClientError> {
        let path = ["v1", "schedules", &id.to_string(), "pause"];
        Self::call(self.request(Method::POST, &path)).await
    }

    /// `POST /v1/schedules/{schedule_id}/resume`.
    pub async fn resume_schedule(&self, id: Uuid) -> Result<Schedule, ClientError> {
        let path = ["v1", "schedules", &id.to_string(), "resume"];
        Self::call(self.request(Method::POST, &path)).await
    }

    /// `DELETE /v1/schedules/{schedule_id}`.
    pub async fn delete_schedule(&self, id: Uuid) -> Result<(), ClientError> {
        let req = self.request(Method::DELETE, &["v1", "schedules", &id.to_string()]);
        Self::checked(req.timeout(REQUEST_TIMEOUT).send().await?).await?;
        Ok(())
    }
}
