//! Bodies of the schedule routes (`/v1/schedules`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use tasker_store::schedule::CatchUp;
use tasker_store::schedule::NewSchedule;
/// A schedule: a template fired on a cron expression.
pub use tasker_store::schedule::ScheduleRow as Schedule;

/// `POST /v1/schedules`: a template to fire on a cron expression.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScheduleRequest {
    /// Unique in its namespace: 1..=128 of a-z, 0-9, `_`, `-`, starting with a letter.
    pub name: String,
    /// The template's namespace, and the schedule's.
    pub namespace: String,
    /// Template name.
    pub template: String,
    /// Template version; omitted means the highest registered when each tick fires.
    #[serde(default)]
    pub version: Option<String>,
    /// Cron expression: 5 fields (`*/5 * * * *`), or 6 with seconds first
    /// (`*/10 * * * * *`); `L`, `#`, `W` and names as in Vixie cron.
    pub cron: String,
    /// IANA time zone the expression is read in. Default `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Each fired task's input; must satisfy the template's `input_schema`. Default `{}`.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub context: Value,
    /// After downtime: `skip` fires only the latest missed tick, `catch_up`
    /// each (the latest 100 at most). Default `skip`.
    #[serde(default)]
    pub catch_up: CatchUp,
}

fn utc() -> String {
    "UTC".into()
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl From<CreateScheduleRequest> for NewSchedule {
    fn from(r: CreateScheduleRequest) -> Self {
        NewSchedule {
            name: r.name,
            namespace: r.namespace,
            template_name: r.template,
            template_version: r.version,
            cron: r.cron,
            timezone: r.timezone,
            context: r.context,
            catch_up: r.catch_up,
        }
    }
}

/// Query of `GET /v1/schedules`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSchedulesParams {
    /// Only schedules of this namespace.
    pub namespace: Option<String>,
    /// Page size, 1..=500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// A page of schedules, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SchedulePage {
    pub schedules: Vec<Schedule>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}
