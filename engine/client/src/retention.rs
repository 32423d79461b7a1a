//! The retention route (`/v1/retention/run`).

use reqwest::Method;

use crate::{Client, ClientError};
use tasker_api_types::{RetentionRun, RetentionRunRequest};

impl Client {
    /// `POST /v1/retention/run`: one run (the server stops after half its
    /// request time limit; `done` false means send it again).
    pub async fn run_retention(
        &self,
        req: &RetentionRunRequest,
    ) -> Result<RetentionRun, ClientError> {
        Self::call(
            self.request(Method::POST, &["v1", "retention", "run"])
                .json(req),
        )
        .await
    }
}
