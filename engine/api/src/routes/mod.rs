//! The routes, each annotated for OpenAPI.
//!
//! One file per resource: [`tasks`], [`steps`], [`templates`], [`queues`],
//! [`workers`], [`dlq`], [`schedules`], [`signals`], [`pauses`], [`limits`], [`health`]; [`body`] holds the request-body checks they share. Every
//! route function is re-exported here (`routes::create_task`, ...).

mod body;
pub(crate) mod dlq;
pub(crate) mod health;
pub(crate) mod limits;
pub(crate) mod pauses;
pub(crate) mod queues;
pub(crate) mod retention;
pub(crate) mod schedules;
pub(crate) mod signals;
pub(crate) mod steps;
pub(crate) mod tasks;
pub(crate) mod templates;
pub(crate) mod workers;

pub use dlq::{discard_dead_step, get_dead_step, list_dlq};
pub use health::{live, ready};
pub use limits::{delete_limit, get_limit, list_limits, set_limit};
pub use pauses::{
    list_pauses, pause_namespace, pause_task, pause_template, resume_namespace, resume_task,
    resume_template,
};
pub use queues::list_queues;
pub use retention::run_retention;
pub use schedules::{
    create_schedule, delete_schedule, get_schedule, list_schedules, pause_schedule, resume_schedule,
};
pub use signals::send_signal;
pub use steps::{
    complete_step, get_step, list_steps, resolve_step_manually, retry_step, step_logs,
    step_transitions,
};
pub use tasks::{
    cancel_task, create_task, create_tasks, get_task, list_tasks, DEFAULT_PAGE, MAX_PAGE,
};
pub use templates::{get_template, list_templates, register_template, validate_template};
pub use workers::list_workers;

use crate::keys::Principal;

fn processor_id(p: &Principal) -> String {
    format!("api:{}", p.name)
}
