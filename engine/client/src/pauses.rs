//! The pause routes: pause and resume a task, a template or a namespace, and
//! list the pauses in force.

use reqwest::Method;

use crate::{Client, ClientError};
use tasker_api_types::{PauseChange, PauseList};

/// What a pause or resume names (the path under `/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseTarget {
    /// A task, by id.
    Task(uuid::Uuid),
    /// Every version of `namespace/name`.
    Template { namespace: String, name: String },
    /// A whole namespace.
    Namespace(String),
}

impl PauseTarget {
    fn path(&self, action: &'static str) -> Vec<String> {
        let mut p: Vec<String> = match self {
            PauseTarget::Task(id) => vec!["tasks".into(), id.to_string()],
            PauseTarget::Template { namespace, name } => {
                vec!["templates".into(), namespace.clone(), name.clone()]
            }
            PauseTarget::Namespace(ns) => vec!["namespaces".into(), ns.clone()],
        };
        p.insert(0, "v1".into());
        p.push(action.into());
        p
    }
}

impl Client {
    /// `POST /v1/{tasks/{id}|templates/{namespace}/{name}|namespaces/{namespace}}/pause`.
    pub async fn pause(
        &self,
        target: &PauseTarget,
        reason: Option<&str>,
    ) -> Result<PauseChange, ClientError> {
        let path = target.path("pause");
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let q: Vec<(&str, &str)> = reason.map(|r| ("reason", r)).into_iter().collect();
        Self::call(self.request(Method::POST, &path).query(&q)).await
    }

    /// `POST .../resume` of the same paths as [`Client::pause`].
    pub async fn resume(&self, target: &PauseTarget) -> Result<PauseChange, ClientError> {
        let path = target.path("resume");
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        Self::call(self.request(Method::POST, &path)).await
    }

    /// `GET /v1/pauses`, of `namespace` when given.
    pub async fn list_pauses(&self, namespace: Option<&str>) -> Result<PauseList, ClientError> {
        let q: Vec<(&str, &str)> = namespace.map(|n| ("namespace", n)).into_iter().collect();
        Self::call(self.request(Method::GET, &["v1", "pauses"]).query(&q)).await
    }
}
