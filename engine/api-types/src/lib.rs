//! tasker-api-types: the request and response bodies of the HTTP API, and its
//! server-sent events, shared by the server (`tasker-api`) and the client
//! (`tasker-client`), documented for OpenAPI. Where a body is exactly a store
//! row, the row itself is the body (re-exported here under its API name; the
//! store derives its schema behind its `openapi` feature); the other bodies
//! are defined here.
//!
//! Invariants: types only, no I/O; a change here is a change of the API's
//! wire format (the OpenAPI document is generated from these types).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

mod limits;
mod pauses;
mod retention;
mod schedules;
mod signals;
mod step_logs;

pub use limits::{Limit, LimitList, SetLimitRequest};
pub use pauses::{ListPausesParams, Pause, PauseChange, PauseList, PauseParams};
pub use retention::{RetentionNamespace, RetentionRun, RetentionRunRequest};
pub use schedules::{CatchUp, CreateScheduleRequest, ListSchedulesParams, Schedule, SchedulePage};
pub use signals::{SendSignalRequest, SignalResult};
pub use step_logs::{AttemptLogBody, LogLineBody, StepLogs};
use tasker_store::component::ComponentMeta;
use tasker_store::task::NewTask;

pub use tasker_store::dlq::DeadStep;
/// One row of a step's transition history.
pub use tasker_store::step::TransitionRow as StepTransition;
/// The outcome of creating a task.
pub use tasker_store::task::Created as CreatedTask;
/// A step of a task.
pub use tasker_store::task::StepRow as Step;
/// A task with its steps and the DAG's edges.
pub use tasker_store::task::TaskDetail as TaskDetailBody;
/// A task.
pub use tasker_store::task::TaskRow as Task;
/// A registered template version.
pub use tasker_store::template::TemplateRow as TemplateSummary;
pub use tasker_store::worker::UnservedStep;
pub use tasker_store::worker::WorkerRow as Worker;

/// `POST /v1/tasks`: a task to create from a registered template.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// Template namespace.
    pub namespace: String,
    /// Template name.
    pub name: String,
    /// Template version; omitted means the highest registered version.
    #[serde(default)]
    pub version: Option<String>,
    /// The task's input; must satisfy the template's `input_schema`. Default `{}`.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub context: Value,
    /// Higher runs first. Default 0.
    #[serde(default)]
    pub priority: i32,
    /// Creating twice with the same key (per namespace) returns the first task.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
    /// A delayed start (RFC 3339): the task is created at once, but no step
    /// is claimed before this instant. At most a year ahead; up to a minute
    /// in the past means now. Excludes `delay_seconds`.
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    /// A delayed start in seconds from now (at most a year). Excludes `run_at`.
    #[serde(default)]
    pub delay_seconds: Option<u64>,
}

/// `POST /v1/tasks/batch`: tasks to create in one transaction (all or none).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTasksRequest {
    /// 1 to 1,000 tasks, each as `POST /v1/tasks` takes it.
    #[schema(min_items = 1, max_items = 1000)]
    pub tasks: Vec<CreateTaskRequest>,
}

/// The outcome of `POST /v1/tasks/batch`: one entry per task, in the
/// request's order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedTasks {
    pub tasks: Vec<CreatedTask>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl CreateTaskRequest {
    /// The request's delayed start, if any.
    pub fn start(&self) -> tasker_store::task::Start {
        tasker_store::task::Start {
            run_at: self.run_at,
            delay_seconds: self.delay_seconds,
        }
    }
}

impl From<CreateTaskRequest> for NewTask {
    fn from(r: CreateTaskRequest) -> Self {
        NewTask {
            namespace: r.namespace,
            name: r.name,
            version: r.version,
            context: r.context,
            priority: r.priority,
            idempotency_key: r.idempotency_key,
            traceparent: None,
        }
    }
}

/// `GET /v1/tasks` query parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTasksParams {
    /// Only tasks of this namespace.
    pub namespace: Option<String>,
    /// Only tasks in this state (e.g. `complete`, `steps_in_process`).
    pub state: Option<String>,
    /// Only tasks of templates with this name.
    pub template: Option<String>,
    /// Only tasks created at or after this instant (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Only tasks created before this instant (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// Page size, 1..=500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
    /// Include each task's context. The page then ends early (with a
    /// `next_cursor`) once its contexts reach `web.list_payload_limit_bytes`.
    pub include_context: Option<bool>,
}

/// A page of tasks, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

/// Optional body of cancel, retry and resolve.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// Why, for the audit trail.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Body of `POST .../complete`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteStepRequest {
    /// The step's result, as a handler would have returned it.
    #[schema(value_type = Object)]
    pub result: Value,
    /// Why, for the audit trail.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The outcome of an operator action.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionResult {
    pub task_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<Uuid>,
    /// The task's state after the action.
    pub task_state: String,
}

/// The registered templates.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateList {
    pub templates: Vec<TemplateSummary>,
}

/// A step's level in the DAG: roots are 0.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepLevel {
    pub step: String,
    pub level: usize,
}

/// The outcome of registering or validating a template.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateAccepted {
    /// `namespace/name/version`.
    pub key: String,
    /// False when validating only, or when the identical definition was already registered.
    pub created: bool,
    pub levels: Vec<StepLevel>,
    /// Steps whose handler no live worker of their pool runs (they would
    /// wait for one); empty when validating only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unserved: Vec<UnservedStep>,
}

/// Depth and age of one queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueInfo {
    pub queue_name: String,
    /// The namespace whose own pool the queue is; absent for other pools
    /// and for the results queue.
    pub namespace: Option<String>,
    /// The pool whose steps the queue holds; absent for the results queue.
    #[serde(default)]
    pub pool: Option<String>,
    pub queue_length: i64,
    pub newest_msg_age_sec: Option<i32>,
    pub oldest_msg_age_sec: Option<i32>,
    pub total_messages: i64,
}

/// Every namespace queue and the results queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueInfo>,
}

/// Query of `GET /v1/templates`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListTemplatesParams {
    /// Only templates of this namespace.
    pub namespace: Option<String>,
}

/// Query of `GET /v1/dlq`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListDlqParams {
    /// Only steps of tasks in this namespace.
    pub namespace: Option<String>,
    /// Page size, 1..=500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// A page of the dead-letter queue of steps.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DlqPage {
    pub steps: Vec<DeadStep>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

/// The worker registry (`GET /v1/workers`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<Worker>,
}

/// Health check outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// This process's circuit breakers (`database`, `handlers.<backend>`) and
    /// their states (`closed`, `half_open`, `open`); `/health/ready` only.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub breakers: std::collections::BTreeMap<String, String>,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `not_found`, `validation_failed`.
    pub error: String,
    /// What went wrong, for people; names the offending field or value.
    pub message: String,
    /// Extra structured information, when there is any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

/// The outcome of an upload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComponentAccepted {
    /// False when the identical bytes were already stored under this name and version.
    pub created: bool,
    pub component: ComponentMeta,
    /// What the component imports (all within the contract).
    pub imports: Vec<String>,
}

/// Every uploaded component.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComponentList {
    pub components: Vec<ComponentMeta>,
}

/// Data of a `state` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskStateEvent {
    pub task_id: Uuid,
    pub state: String,
    /// The previous state; absent in the first event (the current state).
    pub from_state: Option<String>,
    /// When the transition happened; absent in the first event.
    pub at: Option<DateTime<Utc>>,
}

/// Data of a `step` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepStateEvent {
    pub task_id: Uuid,
    pub step: String,
    pub from_state: Option<String>,
    pub state: String,
    pub attempt: Option<i32>,
    pub at: DateTime<Utc>,
}

/// One event of `GET /v1/tasks/{id}/events`. On the wire the SSE event name
/// is [`TaskEvent::name`] and its data [`TaskEvent::data`] (JSON, or plain
/// text for `error`); [`TaskEvent::from_sse`] reads them back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum TaskEvent {
    /// The task's state (first the current one, then each change).
    State(TaskStateEvent),
    /// A step's transition.
    Step(StepStateEvent),
    /// The server could not continue the stream.
    Error(String),
}

impl TaskEvent {
    /// The SSE event name: `state`, `step` or `error`.
    pub fn name(&self) -> &'static str {
        match self {
            TaskEvent::State(_) => "state",
            TaskEvent::Step(_) => "step",
            TaskEvent::Error(_) => "error",
        }
    }

    /// The SSE data: the event as JSON, or the message of an `error`.
    pub fn data(&self) -> Result<String, serde_json::Error> {
        match self {
            TaskEvent::State(e) => serde_json::to_string(e),
            TaskEvent::Step(e) => serde_json::to_string(e),
            TaskEvent::Error(m) => Ok(m.clone()),
        }
    }

    /// The event named `event` with data `data`; an unknown name or data of
    /// the wrong shape is an error saying so.
    pub fn from_sse(event: &str, data: &str) -> Result<TaskEvent, String> {
        let json = |e: serde_json::Error| e.to_string();
        match event {
            "state" => serde_json::from_str(data)
                .map(TaskEvent::State)
                .map_err(json),
            "step" => serde_json::from_str(data)
                .map(TaskEvent::Step)
                .map_err(json),
            "error" => Ok(TaskEvent::Error(data.to_string())),
            other => Err(format!("unknown event `{other}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_events_round_trip_through_their_wire_form() {
        let task_id = Uuid::nil();
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let cases = [
            (
                TaskEvent::State(TaskStateEvent {
                    task_id,
                    state: "pending".into(),
                    from_state: None,
                    at: None,
                }),
                "state",
                r#"{"task_id":"00000000-0000-0000-0000-000000000000","state":"pending","from_state":null,"at":null}"#,
            ),
            (
                TaskEvent::Step(StepStateEvent {
                    task_id,
                    step: "a".into(),
                    from_state: Some("in_progress".into()),
                    state: "complete".into(),
                    attempt: Some(1),
                    at,
                }),
                "step",
                r#"{"task_id":"00000000-0000-0000-0000-000000000000","step":"a","from_state":"in_progress","state":"complete","attempt":1,"at":"2026-01-02T03:04:05Z"}"#,
            ),
            (
                TaskEvent::Error("history unavailable".into()),
                "error",
                "history unavailable",
            ),
        ];
        for (ev, name, data) in cases {
            assert_eq!(ev.name(), name);
            assert_eq!(ev.data().unwrap(), data);
            assert_eq!(TaskEvent::from_sse(name, data).unwrap(), ev);
        }
        assert!(TaskEvent::from_sse("other", "{}")
            .unwrap_err()
            .contains("unknown event `other`"));
        assert!(TaskEvent::from_sse("state", "{}").is_err());
    }
}
