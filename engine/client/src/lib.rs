//! tasker-client: a typed Rust client of the HTTP admin API (served by the
//! `tasker-api` crate; invariant: it speaks HTTP only, never to the database), used by the CLI
//! and the end-to-end tests. Requests and responses are the API's own types
//! ([`tasker_api_types`]); every error response decodes into
//! [`ClientError::Api`] with the API's `{"error","message","details"}` shape.

pub mod sse;

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

mod limits;
mod pauses;
mod retention;
mod schedules;
mod signals;
mod step_logs;
mod steps;

pub use pauses::PauseTarget;

use sse::SseParser;
use tasker_api_types::ErrorBody;
use tasker_api_types::{
    ActionRequest, ActionResult, CreateTaskRequest, CreatedTask, ListTasksParams, QueueList,
    TaskDetailBody, TaskPage, TemplateAccepted, TemplateList,
};
pub use tasker_api_types::{StepStateEvent, TaskEvent, TaskStateEvent};

/// Time limit of one ordinary request (not of an event stream).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Time limit of a WASM component upload (the server compiles it).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Time limit of establishing a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong calling the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error response.
    #[error("{message} ({status} {error})")]
    Api {
        status: StatusCode,
        /// The stable error code, e.g. `not_found`, `validation_failed`.
        error: String,
        message: String,
        details: Option<Value>,
    },
    /// The request could not be sent or its response not read.
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// A response body did not have the expected shape.
    #[error("unexpected response from the API: {0}")]
    Decode(String),
    /// The base URL is not a usable `http(s)://` URL.
    #[error("invalid API URL `{url}`: {reason}")]
    Url { url: String, reason: String },
}

impl ClientError {
    /// The API's error code, for an [`ClientError::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status, for an [`ClientError::Api`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the server could not be reached at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Http(e) if e.is_connect())
    }
}

/// A client of one tasker API.
#[derive(Clone, Debug)]
pub struct Client {
    base: Url,
    api_key: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the API at `base_url` (e.g. `http://127.0.0.1:8080`),
    /// sending `api_key` as `Authorization: Bearer` when given.
    pub fn new(base_url: &str, api_key: Option<String>) -> Result<Client, ClientError> {
        let bad = |reason: String| ClientError::Url {
            url: base_url.to_string(),
            reason,
        };
        let base = Url::parse(base_url).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad("expected an http:// or https:// URL".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("tasker-client/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            base,
            api_key: api_key.filter(|k| !k.is_empty()),
            http,
        })
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Whether an API key is sent.
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// `base` + path segments (each percent-encoded).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let req = self.http.request(method, self.url(segments));
        match &self.api_key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    /// Sends `req`; a success body decodes into `T`, an error into [`ClientError::Api`].
    async fn call<T: DeserializeOwned>(req: RequestBuilder) -> Result<T, ClientError> {
        let res = Self::checked(req.timeout(REQUEST_TIMEOUT).send().await?).await?;
        let bytes = res.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `res` itself when successful, else its error body as [`ClientError::Api`].
    async fn checked(res: Response) -> Result<Response, ClientError> {
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let text = res.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => ClientError::Api {
                status,
                error: b.error,
                message: b.message,
                details: b.details,
            },
            Err(_) => ClientError::Api {
                status,
                error: format!("http_{}", status.as_u16()),
                message: if text.trim().is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    text
                },
                details: None,
            },
        })
    }

    // ------------------------------------------------------------ tasks

    /// `POST /v1/tasks`.
    pub async fn create_task(&self, req: &CreateTaskRequest) -> Result<CreatedTask, ClientError> {
        self.create_task_in_trace(req, None).await
    }

    /// [`Client::create_task`] as part of the caller's trace: `traceparent`
    /// (W3C) goes in the request's header, and the task's trace continues it.
    pub async fn create_task_in_trace(
        &self,
        req: &CreateTaskRequest,
        traceparent: Option<&str>,
    ) -> Result<CreatedTask, ClientError> {
        let mut request = self.request(Method::POST, &["v1", "tasks"]).json(req);
        if let Some(tp) = traceparent {
            request = request.header("traceparent", tp);
        }
        Self::call(request).await
    }

    /// `POST /v1/tasks/batch`: up to 1,000 tasks in one transaction (all or
    /// none); one [`CreatedTask`] per task, in order.
    pub async fn create_tasks(
        &self,
        tasks: &[CreateTaskRequest],
    ) -> Result<Vec<CreatedTask>, ClientError> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            tasks: &'a [CreateTaskRequest],
        }
        let request = self
            .request(Method::POST, &["v1", "tasks", "batch"])
            .json(&Body { tasks });
        let created: tasker_api_types::CreatedTasks = Self::call(request).await?;
        Ok(created.tasks)
    }

    /// `GET /v1/tasks/{id}`: the task with its steps and edges.
    pub async fn get_task(&self, id: Uuid) -> Result<TaskDetailBody, ClientError> {
        Self::call(self.request(Method::GET, &["v1", "tasks", &id.to_string()])).await
    }

    /// `GET /v1/tasks`: one page; `cursor` (the previous page's `next_cursor`)
    /// overrides `filter.cursor`.
    pub async fn list_tasks(
        &self,
        filter: &ListTasksParams,
        cursor: Option<Uuid>,
    ) -> Result<TaskPage, ClientError> {
        let mut q: Vec<(&str, String)> = Vec::new();
        let f = filter;
        for (k, v) in [
            ("namespace", &f.namespace),
            ("state", &f.state),
            ("template", &f.template),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if let Some(t) = f.created_after {
            q.push(("created_after", t.to_rfc3339()));
        }
        if let Some(t) = f.created_before {
            q.push(("created_before", t.to_rfc3339()));
        }
        if let Some(l) = f.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(with) = f.include_context {
            q.push(("include_context", with.to_string()));
        }
        if let Some(c) = cursor.or(f.cursor) {
            q.push(("cursor", c.to_string()));
        }
        Self::call(self.request(Method::GET, &["v1", "tasks"]).query(&q)).await
    }

    /// `POST /v1/tasks/{id}/cancel`.
    pub async fn cancel_task(
        &self,
        id: Uuid,
        reason: Option<String>,
    ) -> Result<ActionResult, ClientError> {
        let req = self
            .request(Method::POST, &["v1", "tasks", &id.to_string(), "cancel"])
            .json(&ActionRequest { reason });
        Self::call(req).await
    }

    /// `GET /v1/tasks/{id}/events`: the task's state changes until it ends.
    ///
    /// The first event is the task's current state; the stream ends after a
    /// terminal state or `blocked_by_failures` (or when the server goes away).
    pub async fn task_events(
        &self,
        id: Uuid,
    ) -> Result<BoxStream<'static, Result<TaskEvent, ClientError>>, ClientError> {
        let res = self
            .request(Method::GET, &["v1", "tasks", &id.to_string(), "events"])
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await?;
        let res = Self::checked(res).await?;
        let state = (
            res.bytes_stream().boxed(),
            SseParser::default(),
            VecDeque::<Result<TaskEvent, ClientError>>::new(),
        );
        let stream = futures::stream::unfold(state, |(mut body, mut parser, mut pending)| async {
            loop {
                if let Some(ev) = pending.pop_front() {
                    return Some((ev, (body, parser, pending)));
                }
                match body.next().await {
                    None => return None,
                    Some(Err(e)) => {
                        pending.push_back(Err(ClientError::Http(e)));
                        let done = futures::stream::empty().boxed();
                        body = done;
                    }
                    Some(Ok(chunk)) => {
                        for ev in parser.push(&chunk) {
                            pending.push_back(decode_event(&ev));
                        }
                    }
                }
            }
        });
        Ok(stream.boxed())
    }

    // ------------------------------------------------------------ templates

    /// `POST /v1/templates` with a YAML (or JSON, which is YAML) definition.
    pub async fn register_template(&self, yaml: &str) -> Result<TemplateAccepted, ClientError> {
        let req = self
            .request(Method::POST, &["v1", "templates"])
            .header(CONTENT_TYPE, "application/yaml")
            .body(yaml.to_string());
        Self::call(req).await
    }

    /// `GET /v1/templates`.
    pub async fn list_templates(&self) -> Result<TemplateList, ClientError> {
        Self::call(self.request(Method::GET, &["v1", "templates"])).await
    }

    /// `POST /v1/templates/validate`: validates without registering.
    pub async fn validate_template(&self, yaml: &str) -> Result<TemplateAccepted, ClientError> {
        let req = self
            .request(Method::POST, &["v1", "templates", "validate"])
            .header(CONTENT_TYPE, "application/yaml")
            .body(yaml.to_string());
        Self::call(req).await
    }

    // ------------------------------------------------------------ queues

    /// `GET /v1/queues`: depth and age of every queue.
    pub async fn queues(&self) -> Result<QueueList, ClientError> {
        Self::call(self.request(Method::GET, &["v1", "queues"])).await
    }

    // ------------------------------------------------------------ dead letters

    /// `GET /v1/dlq`: a page of the dead-letter queue of steps.
    pub async fn dlq(
        &self,
        params: &tasker_api_types::ListDlqParams,
    ) -> Result<tasker_api_types::DlqPage, ClientError> {
        Self::call(self.request(Method::GET, &["v1", "dlq"]).query(params)).await
    }

    /// `GET /v1/dlq/{step_id}`: one dead step.
    pub async fn dead_step(
        &self,
        step_id: Uuid,
    ) -> Result<tasker_api_types::DeadStep, ClientError> {
        let id = step_id.to_string();
        Self::call(self.request(Method::GET, &["v1", "dlq", &id])).await
    }

    /// `POST /v1/dlq/{step_id}/discard`: gives a dead step up (its task ends in error).
    pub async fn discard_dead_step(
        &self,
        step_id: Uuid,
        reason: Option<String>,
    ) -> Result<ActionResult, ClientError> {
        let id = step_id.to_string();
        let req = self
            .request(Method::POST, &["v1", "dlq", &id, "discard"])
            .json(&ActionRequest { reason });
        Self::call(req).await
    }

    // ------------------------------------------------------------ workers

    /// `GET /v1/workers`: the worker registry (live workers; `all`: also
    /// stopped and gone ones).
    pub async fn workers(&self, all: bool) -> Result<tasker_api_types::WorkerList, ClientError> {
        let req = self.request(Method::GET, &["v1", "workers"]);
        Self::call(req.query(&[("all", all)])).await
    }

    // ---------------------------------------------------------- WASM components

    /// `PUT /v1/components/{name}/{version}`: uploads a component.
    pub async fn upload_component(
        &self,
        name: &str,
        version: &str,
        component: Vec<u8>,
    ) -> Result<tasker_api_types::ComponentAccepted, ClientError> {
        let req = self
            .request(Method::PUT, &["v1", "components", name, version])
            .header(CONTENT_TYPE, "application/wasm")
            .body(component)
            // The server compiles the component before answering: large
            // ones (componentize-py) take a while.
            .timeout(UPLOAD_TIMEOUT);
        let res = Self::checked(req.send().await?).await?;
        let bytes = res.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET /v1/components`: every uploaded component's metadata.
    pub async fn list_components(&self) -> Result<tasker_api_types::ComponentList, ClientError> {
        Self::call(self.request(Method::GET, &["v1", "components"])).await
    }

    /// `DELETE /v1/components/{name}/{version}`.
    pub async fn delete_component(&self, name: &str, version: &str) -> Result<(), ClientError> {
        let req = self.request(Method::DELETE, &["v1", "components", name, version]);
        Self::checked(req.timeout(REQUEST_TIMEOUT).send().await?).await?;
        Ok(())
    }
}

/// One SSE event as a [`TaskEvent`]; unknown event names are a decode error.
fn decode_event(ev: &sse::SseEvent) -> Result<TaskEvent, ClientError> {
    TaskEvent::from_sse(&ev.event, &ev.data)
        .map_err(|e| ClientError::Decode(format!("`{}` event `{}`: {e}", ev.event, ev.data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_segments_and_keep_a_base_path() {
        let c = Client::new("http://h:1/prefix/", None).unwrap();
        assert_eq!(
            c.url(&["v1", "tasks", "a b/c"]).as_str(),
            "http://h:1/prefix/v1/tasks/a%20b%2Fc"
        );
        assert_eq!(c.base_url(), "http://h:1/prefix");
        assert!(Client::new("localhost:8080", None).is_err());
    }
}
