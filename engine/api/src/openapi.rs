//! The OpenAPI document ([`ApiDoc`]) with its modifiers (bearer security,
//! the 401/403 of every protected route), and the `/openapi.json` and `/docs`
//! pages that serve it.

use axum::http::{header, Method};
use axum::response::IntoResponse;
use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::keys::Permission;
use crate::{components, events, metrics, ops, routes};

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "tasker admin API", description = "Create, watch and operate tasks; register templates."),
    paths(
        routes::tasks::create_task, routes::tasks::create_tasks, routes::tasks::list_tasks, routes::tasks::get_task,
        routes::steps::list_steps, routes::tasks::cancel_task, routes::signals::send_signal,
        routes::steps::get_step, routes::steps::step_transitions, routes::steps::step_logs,
        routes::steps::retry_step,
        routes::steps::resolve_step_manually, routes::steps::complete_step,
        routes::templates::register_template, routes::templates::list_templates,
        routes::templates::get_template, routes::templates::validate_template,
        routes::queues::list_queues, routes::workers::list_workers, routes::health::live,
        routes::dlq::list_dlq, routes::dlq::get_dead_step, routes::dlq::discard_dead_step, routes::health::ready,
        events::task_events, ops::analytics, ops::list_archive, ops::requeue, metrics::metrics,
        components::upload_component, components::list_components, components::get_component, components::delete_component,
        routes::schedules::create_schedule, routes::schedules::list_schedules, routes::schedules::get_schedule,
        routes::schedules::pause_schedule, routes::schedules::resume_schedule, routes::schedules::delete_schedule,
        routes::retention::run_retention,
        routes::pauses::pause_task, routes::pauses::resume_task, routes::pauses::pause_template,
        routes::pauses::resume_template, routes::pauses::pause_namespace, routes::pauses::resume_namespace,
        routes::pauses::list_pauses,
        routes::limits::set_limit, routes::limits::list_limits, routes::limits::get_limit,
        routes::limits::delete_limit,
    ),
    components(schemas(ErrorBody, Permission, events::TaskStateEvent, events::StepStateEvent,
        components::ComponentBytes, components::ComponentAccepted, components::ComponentList, tasker_store::component::ComponentMeta)),
    modifiers(&BearerAuth, &AuthResponses),
    tags(
        (name = "tasks"), (name = "steps"), (name = "templates"), (name = "queues"), (name = "workers"), (name = "dlq"), (name = "analytics"), (name = "health"), (name = "components"), (name = "schedules"), (name = "retention"), (name = "limits"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Documents the 401 and 403 of every protected route from the route table,
/// so no `#[utoipa::path]` repeats them.
struct AuthResponses;

impl Modify for AuthResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        use utoipa::ToSchema;
        let response = |description: String| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                        .build(),
                )
                .build()
        };
        for r in routes() {
            let Some(needed) = r.permission else {
                continue;
            };
            let Some(item) = openapi.paths.paths.get_mut(r.path) else {
                continue;
            };
            let op = match r.method {
                Method::GET => item.get.as_mut(),
                Method::POST => item.post.as_mut(),
                Method::PUT => item.put.as_mut(),
                Method::DELETE => item.delete.as_mut(),
                Method::PATCH => item.patch.as_mut(),
                _ => None,
            };
            let Some(op) = op else {
                continue;
            };
            let responses = &mut op.responses.responses;
            responses.insert("401".into(), response("No valid API key".into()).into());
            responses.insert(
                "403".into(),
                response(format!("Missing permission {needed}")).into(),
            );
        }
    }
}

/// The OpenAPI spec as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

const DOCS_HTML: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>tasker admin API</title></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="/docs/redoc.standalone.js"></script>
</body></html>"#;

/// Redoc 2.5.2, vendored (`engine/api/assets/redoc/README.md`).
const REDOC_JS: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");

/// What the docs page may load: only this origin. Redoc injects its styles
/// (`'unsafe-inline'` for styles only) and runs its search in a blob worker.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn docs_headers(content_type: &'static str) -> [(header::HeaderName, &'static str); 4] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, DOCS_CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ]
}

pub(crate) async fn docs() -> impl IntoResponse {
    (docs_headers("text/html; charset=utf-8"), DOCS_HTML)
}

pub(crate) async fn redoc_js() -> impl IntoResponse {
    (
        docs_headers("text/javascript; charset=utf-8"),
        [(header::CACHE_CONTROL, "public, max-age=86400")],
        REDOC_JS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_route_is_in_the_openapi_spec_and_nothing_else() {
        let spec = openapi();
        let mut documented = BTreeSet::new();
        for (path, item) in &spec.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ] {
                if op.is_some() {
                    documented.insert(format!("{method} {path}"));
                }
            }
        }
        let routed: BTreeSet<String> = routes()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from the spec: {missing:?}"
        );
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(extra.is_empty(), "spec paths with no route: {extra:?}");
    }

    #[test]
    fn protected_routes_declare_bearer_security() {
        let spec = serde_json::to_value(openapi()).unwrap();
        for r in routes().iter() {
            let Some(needed) = r.permission else {
                continue;
            };
            let op = &spec["paths"][r.path][r.method.as_str().to_lowercase()];
            assert!(
                op["security"].is_array(),
                "{} {} has no security requirement",
                r.method,
                r.path
            );
            // The spec names the permission the route table enforces.
            assert_eq!(
                op["security"],
                serde_json::json!([{ "bearer": [needed.as_str()] }]),
                "{} {}: the spec's permission is not the route table's",
                r.method,
                r.path
            );
            for code in ["401", "403"] {
                assert!(
                    op["responses"][code].is_object(),
                    "{} {} does not document {code}",
                    r.method,
                    r.path
                );
            }
        }
    }
}
