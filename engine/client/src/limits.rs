//! The rate limit routes (`/v1/limits`).

use reqwest::Method;

use crate::{Client, ClientError, REQUEST_TIMEOUT};
use tasker_api_types::{Limit, LimitList, SetLimitRequest};

impl Client {
    /// `PUT /v1/limits/{name}`: defines the limit or changes it.
    pub async fn set_limit(&self, name: &str, req: &SetLimitRequest) -> Result<Limit, ClientError> {
        Self::call(self.request(Method::PUT, &["v1", "limits", name]).json(req)).await
    }

    /// `GET /v1/limits`.
    pub async fn list_limits(&self) -> Result<LimitList, ClientError> {
        Self::call(self.request(Method::GET, &["v1", "limits"])).await
    }

    /// `GET /v1/limits/{name}`.
    pub async fn get_limit(&self, name: &str) -> Result<Limit, ClientError> {
        Self::call(self.request(Method::GET, &["v1", "limits", name])).await
    }

    /// `DELETE /v1/limits/{name}`.
    pub async fn delete_limit(&self, name: &str) -> Result<(), ClientError> {
        let req = self.request(Method::DELETE, &["v1", "limits", name]);
        Self::checked(req.timeout(REQUEST_TIMEOUT).send().await?).await?;
        Ok(())
    }
}
