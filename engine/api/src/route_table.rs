//! The route table: every documented route once, with its method, path and
//! the permission it needs. The router, the spec's 401/403 responses and the
//! OpenAPI completeness test all read it.

use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};

use crate::keys::Permission;
use crate::{components, events, metrics, ops, ApiState};

/// One route: method, path (axum/OpenAPI syntax) and the permission it needs
/// (`None`: public).
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub permission: Option<Permission>,
    pub(crate) endpoint: MethodRouter<ApiState>,
}

fn route<H, T>(
    method: Method,
    path: &'static str,
    permission: Option<Permission>,
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
        endpoint: on(filter, endpoint),
    }
}

/// Every documented route of the API, in one place.
pub fn routes() -> Vec<Route> {
    use crate::routes as h;
    use Method as M;
    use Permission as P;
    vec![
        route(M::POST, "/v1/tasks", Some(P::TasksCreate), h::create_task),
        route(M::GET, "/v1/tasks", Some(P::TasksRead), h::list_tasks),
        route(M::GET, "/v1/tasks/{id}", Some(P::TasksRead), h::get_task),
        route(
            M::GET,
            "/v1/tasks/{id}/steps",
            Some(P::TasksRead),
            h::list_steps,
        ),
        route(
            M::GET,
            "/v1/tasks/{id}/events",
            Some(P::TasksRead),
            events::task_events,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/cancel",
            Some(P::TasksCancel),
            h::cancel_task,
        ),
        route(
            M::GET,
            "/v1/tasks/{id}/steps/{step}",
            Some(P::TasksRead),
            h::get_step,
        ),
        route(
            M::GET,
            "/v1/tasks/{id}/steps/{step}/transitions",
            Some(P::TasksRead),
            h::step_transitions,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/steps/{step}/retry",
            Some(P::StepsResolve),
            h::retry_step,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/steps/{step}/resolve",
            Some(P::StepsResolve),
            h::resolve_step_manually,
        ),
        route(
            M::POST,
            "/v1/tasks/{id}/steps/{step}/complete",
            Some(P::StepsResolve),
            h::complete_step,
        ),
        route(
            M::POST,
            "/v1/templates",
            Some(P::TemplatesWrite),
            h::register_template,
        ),
        route(
            M::GET,
            "/v1/templates",
            Some(P::TasksRead),
            h::list_templates,
        ),
        route(
            M::GET,
            "/v1/templates/{namespace}/{name}/{version}",
            Some(P::TasksRead),
            h::get_template,
        ),
        route(
            M::POST,
            "/v1/templates/validate",
            Some(P::TasksRead),
            h::validate_template,
        ),
        route(M::GET, "/v1/queues", Some(P::TasksRead), h::list_queues),
        route(M::GET, "/v1/workers", Some(P::TasksRead), h::list_workers),
        route(M::GET, "/v1/dlq", Some(P::TasksRead), h::list_dlq),
        route(
            M::GET,
            "/v1/dlq/{step_id}",
            Some(P::TasksRead),
            h::get_dead_step,
        ),
        route(
            M::POST,
            "/v1/dlq/{step_id}/discard",
            Some(P::StepsResolve),
            h::discard_dead_step,
        ),
        route(
            M::GET,
            "/v1/queues/{queue}/archive",
            Some(P::TasksRead),
            ops::list_archive,
        ),
        route(
            M::POST,
            "/v1/queues/{queue}/archive/{msg_id}/requeue",
            Some(P::Admin),
            ops::requeue,
        ),
        route(M::GET, "/v1/analytics", Some(P::TasksRead), ops::analytics),
        // Uploaded WASM components (`components.rs`).
        route(
            M::PUT,
            components::UPLOAD_PATH,
            Some(P::ComponentsWrite),
            components::upload_component,
        ),
        route(
            M::GET,
            "/v1/components",
            Some(P::TasksRead),
            components::list_components,
        ),
        route(
            M::GET,
            "/v1/components/{name}/{version}",
            Some(P::TasksRead),
            components::get_component,
        ),
        route(
            M::DELETE,
            "/v1/components/{name}/{version}",
            Some(P::ComponentsWrite),
            components::delete_component,
        ),
        // Public: read-only, no ids in labels (see `metrics`).
        route(M::GET, "/metrics", None, metrics::metrics),
        route(M::GET, "/health/live", None, h::live),
        route(M::GET, "/health/ready", None, h::ready),
    ]
}
