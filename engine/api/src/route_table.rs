//! The route table: every documented route once, with its method, path and
//! the permission it needs. The router, the spec's 401/403 responses and the
//! OpenAPI completeness test all read it.

use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};

use crate::keys::Permission;
use crate::scope::Scope;
use crate::{components, events, metrics, ops, ApiState};

/// One route: method, path (axum/OpenAPI syntax), the permission it needs
/// (`None`: public) and how it meets a key limited to namespaces.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub permission: Option<Permission>,
    pub scope: Scope,
    pub(crate) endpoint: MethodRouter<ApiState>,
}

fn route<H, T>(
    method: Method,
    path: &'static str,
    (permission, scope): (Option<Permission>, Scope),
    endpoint: H,
) -> Route
where
    H: axum::handler::Handler<T, ApiState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Route {
        method,
        path,
        permission,
        scope,
        endpoint: on(filter, endpoint),
    }
}

/// Every documented route of the API, in one place.
pub fn routes() -> Vec<Route> {
    use crate::routes as h;
    use Method as M;
    use Permission as P;
    use Scope as S;
    vec![
        route(
            M::POST,
            "/v1/tasks",
            (Some(P::TasksCreate), S::Handler),
            h::create_task,
        ),
        route(
            M::POST,
            "/v1/tasks/batch",
            (Some(P::TasksCreate), S::Handler),
            h::create_tasks,
        ),
        route(
            M::GET,
            "/v1/tasks",
            (Some(P::TasksRead), S::Handler),
            h::list_tasks,
        ),
        route(
            M::GET,
            "/v1/tasks/{id}",
            (Some(P::TasksRead), S::Path),
            h::get_task,
        ),
        route(
            M::GET,
            "/v1/tasks/{id}/steps",
            (Some(P::TasksRead), S::Path),
            h::list_steps,
        ),
        route(
            M::GET,
            "/v1/tasks/{id}/events",
            (Some(P::TasksRead), S::Path),
            events::task_events,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/cancel",
            (Some(P::TasksCancel), S::Path),
            h::cancel_task,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/signals/{name}",
            (Some(P::TasksCreate), S::Path),
            h::send_signal,
        ),
        route(
            M::GET,
            "/v1/tasks/{id}/steps/{step}",
            (Some(P::TasksRead), S::Path),
            h::get_step,
        ),
        route(
            M::GET,
            "/v1/tasks/{id}/steps/{step}/transitions",
            (Some(P::TasksRead), S::Path),
            h::step_transitions,
        ),
        route(
            M::GET,
            "/v1/tasks/{id}/steps/{step}/logs",
            (Some(P::TasksRead), S::Path),
            h::step_logs,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/steps/{step}/retry",
            (Some(P::StepsResolve), S::Path),
            h::retry_step,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/steps/{step}/resolve",
            (Some(P::StepsResolve), S::Path),
            h::resolve_step_manually,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/steps/{step}/complete",
            (Some(P::StepsResolve), S::Path),
            h::complete_step,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/pause",
            (Some(P::TasksCancel), S::Path),
            h::pause_task,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/resume",
            (Some(P::TasksCancel), S::Path),
            h::resume_task,
        ),
        route(
            M::POST,
            "/v1/templates/{namespace}/{name}/pause",
            (Some(P::TasksCancel), S::Path),
            h::pause_template,
        ),
        route(
            M::POST,
            "/v1/templates/{namespace}/{name}/resume",
            (Some(P::TasksCancel), S::Path),
            h::resume_template,
        ),
        route(
            M::POST,
            "/v1/namespaces/{namespace}/pause",
            (Some(P::TasksCancel), S::Path),
            h::pause_namespace,
        ),
        route(
            M::POST,
            "/v1/namespaces/{namespace}/resume",
            (Some(P::TasksCancel), S::Path),
            h::resume_namespace,
        ),
        route(
            M::GET,
            "/v1/pauses",
            (Some(P::TasksRead), S::Handler),
            h::list_pauses,
        ),
        // Rate limits cover every namespace.
        route(
            M::PUT,
            "/v1/limits/{name}",
            (Some(P::Admin), S::Unscoped),
            h::set_limit,
        ),
        route(
            M::GET,
            "/v1/limits",
            (Some(P::TasksRead), S::Unscoped),
            h::list_limits,
        ),
        route(
            M::GET,
            "/v1/limits/{name}",
            (Some(P::TasksRead), S::Unscoped),
            h::get_limit,
        ),
        route(
            M::DELETE,
            "/v1/limits/{name}",
            (Some(P::Admin), S::Unscoped),
            h::delete_limit,
        ),
        route(
            M::POST,
            "/v1/templates",
            (Some(P::TemplatesWrite), S::Handler),
            h::register_template,
        ),
        route(
            M::GET,
            "/v1/templates",
            (Some(P::TasksRead), S::Handler),
            h::list_templates,
        ),
        route(
            M::GET,
            "/v1/templates/{namespace}/{name}/{version}",
            (Some(P::TasksRead), S::Path),
            h::get_template,
        ),
        route(
            M::POST,
            "/v1/templates/validate",
            (Some(P::TasksRead), S::Handler),
            h::validate_template,
        ),
        route(
            M::POST,
            "/v1/schedules",
            (Some(P::TasksCreate), S::Handler),
            h::create_schedule,
        ),
        route(
            M::GET,
            "/v1/schedules",
            (Some(P::TasksRead), S::Handler),
            h::list_schedules,
        ),
        route(
            M::GET,
            "/v1/schedules/{schedule_id}",
            (Some(P::TasksRead), S::Path),
            h::get_schedule,
        ),
        route(
            M::POST,
            "/v1/schedules/{schedule_id}/pause",
            (Some(P::TasksCreate), S::Path),
            h::pause_schedule,
        ),
        route(
            M::POST,
            "/v1/schedules/{schedule_id}/resume",
            (Some(P::TasksCreate), S::Path),
            h::resume_schedule,
        ),
        route(
            M::DELETE,
            "/v1/schedules/{schedule_id}",
            (Some(P::TasksCreate), S::Path),
            h::delete_schedule,
        ),
        route(
            M::GET,
            "/v1/queues",
            (Some(P::TasksRead), S::Unscoped),
            h::list_queues,
        ),
        route(
            M::GET,
            "/v1/workers",
            (Some(P::TasksRead), S::Unscoped),
            h::list_workers,
        ),
        route(
            M::GET,
            "/v1/dlq",
            (Some(P::TasksRead), S::Handler),
            h::list_dlq,
        ),
        route(
            M::GET,
            "/v1/dlq/{step_id}",
            (Some(P::TasksRead), S::Path),
            h::get_dead_step,
        ),
        route(
            M::POST,
            "/v1/dlq/{step_id}/discard",
            (Some(P::StepsResolve), S::Path),
            h::discard_dead_step,
        ),
        route(
            M::GET,
            "/v1/queues/{queue}/archive",
            (Some(P::TasksRead), S::Unscoped),
            ops::list_archive,
        ),
        route(
            M::POST,
            "/v1/queues/{queue}/archive/{msg_id}/requeue",
            (Some(P::Admin), S::Unscoped),
            ops::requeue,
        ),
        route(
            M::GET,
            "/v1/analytics",
            (Some(P::TasksRead), S::Unscoped),
            ops::analytics,
        ),
        route(
            M::POST,
            "/v1/retention/run",
            (Some(P::Admin), S::Unscoped),
            h::run_retention,
        ),
        // Uploaded WASM components (`components.rs`).
        route(
            M::PUT,
            components::UPLOAD_PATH,
            (Some(P::ComponentsWrite), S::Unscoped),
            components::upload_component,
        ),
        route(
            M::GET,
            "/v1/components",
            (Some(P::TasksRead), S::Any),
            components::list_components,
        ),
        route(
            M::GET,
            "/v1/components/{name}/{version}",
            (Some(P::TasksRead), S::Any),
            components::get_component,
        ),
        route(
            M::DELETE,
            "/v1/components/{name}/{version}",
            (Some(P::ComponentsWrite), S::Unscoped),
            components::delete_component,
        ),
        // Public: read-only, no ids in labels (see `metrics`).
        route(M::GET, "/metrics", (None, S::Any), metrics::metrics),
        route(M::GET, "/health/live", (None, S::Any), h::live),
        route(M::GET, "/health/ready", (None, S::Any), h::ready),
    ]
}
