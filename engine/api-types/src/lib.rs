//! Request and response bodies of the API, documented for OpenAPI. They mirror
//! the store's types (which know nothing of HTTP) field for field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use tasker_store::component::ComponentMeta;
use tasker_store::task::{NewTask, StepRow, TaskDetail, TaskRow};

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
}

fn empty_object() -> Value {
    Value::Object(Default::default())
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
        }
    }
}

/// The outcome of creating a task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedTask {
    pub task_id: Uuid,
    /// False when an earlier task with the same idempotency key was returned.
    pub created: bool,
}

/// A task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub namespace: String,
    pub template_name: String,
    pub template_version: String,
    #[schema(value_type = Object)]
    pub context: Value,
    pub priority: i32,
    pub idempotency_key: Option<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<TaskRow> for Task {
    fn from(t: TaskRow) -> Self {
        Task {
            id: t.id,
            namespace: t.namespace,
            template_name: t.template_name,
            template_version: t.template_version,
            context: t.context,
            priority: t.priority,
            idempotency_key: t.idempotency_key,
            state: t.state,
            created_at: t.created_at,
            updated_at: t.updated_at,
            completed_at: t.completed_at,
        }
    }
}

/// A step of a task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Step {
    pub id: Uuid,
    pub task_id: Uuid,
    pub name: String,
    pub handler_name: String,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub last_error: Option<Value>,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<StepRow> for Step {
    fn from(s: StepRow) -> Self {
        Step {
            id: s.id,
            task_id: s.task_id,
            name: s.name,
            handler_name: s.handler_name,
            state: s.state,
            attempts: s.attempts,
            max_attempts: s.max_attempts,
            result: s.result,
            last_error: s.last_error,
            next_retry_at: s.next_retry_at,
            created_at: s.created_at,
            started_at: s.started_at,
            completed_at: s.completed_at,
        }
    }
}

/// A task with its steps and the DAG's edges.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskDetailBody {
    #[serde(flatten)]
    pub task: Task,
    pub steps: Vec<Step>,
    /// `[parent step name, child step name]` pairs.
    #[schema(value_type = Vec<Vec<String>>)]
    pub edges: Vec<(String, String)>,
}

impl From<TaskDetail> for TaskDetailBody {
    fn from(d: TaskDetail) -> Self {
        TaskDetailBody {
            task: d.task.into(),
            steps: d.steps.into_iter().map(Into::into).collect(),
            edges: d.edges,
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

/// One row of a step's transition history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepTransition {
    pub id: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub event: String,
    pub reason: Option<String>,
    pub attempt: i32,
    pub processor_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<tasker_store::step::TransitionRow> for StepTransition {
    fn from(r: tasker_store::step::TransitionRow) -> Self {
        StepTransition {
            id: r.id,
            from_state: r.from_state,
            to_state: r.to_state,
            event: r.event,
            reason: r.reason,
            attempt: r.attempt,
            processor_id: r.processor_id,
            created_at: r.created_at,
        }
    }
}

/// A registered template version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateSummary {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub created_at: DateTime<Utc>,
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
}

/// Depth and age of one queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueInfo {
    pub queue_name: String,
    /// The namespace served by the queue; absent for the results queue.
    pub namespace: Option<String>,
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

/// Health check outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
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
pub struct HandlerAccepted {
    /// False when the identical bytes were already stored under this name and version.
    pub created: bool,
    pub handler: ComponentMeta,
    /// What the component imports (all within the contract).
    pub imports: Vec<String>,
}

/// Every uploaded component.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HandlerList {
    pub handlers: Vec<ComponentMeta>,
}
