//! The HTTP admin API (axum): tasks, steps, templates, queues, health, the
//! OpenAPI spec at `/openapi.json` and its docs page at `/docs`.
//!
//! Every route is listed once, in [`routes()`], with the permission it needs;
//! the router, the spec's 401 and 403 responses ([`ApiDoc`]) and the OpenAPI
//! completeness test all read that list. Every
//! error is `{"error": code, "message": ..., "details": ...}` ([`error`]).

pub mod error;
pub mod events;
pub mod extract;
pub mod keys;
pub mod metrics;
pub mod ops;
pub mod routes;
pub use tasker_api_types as types;
pub mod wasm;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{DefaultBodyLimit, RawPathParams, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use error::{ErrorBody, HttpError};
use keys::{Permission, Principal};
use tasker_config::TaskerConfig;
use tasker_notify::watch::TaskWatcher;
use tasker_store::template::TemplateCache;

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// No key needed (explicit configuration only; logged as a warning).
    Disabled,
    /// `Authorization: Bearer <key>` with a stored key or the bootstrap key.
    Keys { bootstrap: Option<String> },
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub templates: TemplateCache,
    pub auth: AuthMode,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Time limit of one request.
    pub request_timeout: Duration,
    /// The one task watcher of this server (one LISTEN connection for every
    /// event stream), started by the first stream.
    pub watcher: Arc<tokio::sync::OnceCell<TaskWatcher>>,
    /// WASM component uploads (`[wasm]`).
    pub wasm: wasm::WasmUploads,
}

impl ApiState {
    /// State from the `[web]` configuration.
    pub fn from_config(pool: PgPool, config: &TaskerConfig) -> Self {
        let web = &config.web;
        let auth = if web.auth.enabled {
            AuthMode::Keys {
                bootstrap: web
                    .auth
                    .bootstrap_key
                    .as_ref()
                    .map(|s| s.expose().to_string()),
            }
        } else {
            AuthMode::Disabled
        };
        ApiState {
            pool,
            templates: TemplateCache::default(),
            auth,
            body_limit_bytes: usize::try_from(web.request_body_limit_bytes).unwrap_or(usize::MAX),
            request_timeout: Duration::from_millis(web.request_timeout_ms),
            watcher: Arc::default(),
            wasm: wasm::WasmUploads::new(
                config.wasm.enabled,
                usize::try_from(config.wasm.max_component_bytes).unwrap_or(usize::MAX),
                tasker_worker::handler::wasm::host_config(&config.wasm),
            ),
        }
    }

    /// The shared task watcher, started on first use.
    pub async fn watcher(&self) -> Result<&TaskWatcher, sqlx::Error> {
        self.watcher
            .get_or_try_init(|| TaskWatcher::start(&self.pool))
            .await
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// One route: method, path (axum/OpenAPI syntax) and the permission it needs
/// (`None`: public).
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub permission: Option<Permission>,
    endpoint: MethodRouter<ApiState>,
}

fn route<H, T>(
    method: Method,
    path: &'static str,
    permission: Option<Permission>,
    handler: H,
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
        endpoint: on(filter, handler),
    }
}

/// Every documented route of the API, in one place.
pub fn routes() -> Vec<Route> {
    use routes as h;
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
        // WASM handler components (`wasm.rs`).
        route(
            M::PUT,
            wasm::UPLOAD_PATH,
            Some(P::HandlersWrite),
            wasm::upload_handler,
        ),
        route(
            M::GET,
            "/v1/handlers",
            Some(P::TasksRead),
            wasm::list_handlers,
        ),
        route(
            M::GET,
            "/v1/handlers/{name}/{version}",
            Some(P::TasksRead),
            wasm::get_handler,
        ),
        route(
            M::DELETE,
            "/v1/handlers/{name}/{version}",
            Some(P::HandlersWrite),
            wasm::delete_handler,
        ),
        // Public: read-only, no ids in labels (see `metrics`).
        route(M::GET, "/metrics", None, metrics::metrics),
        route(M::GET, "/health/live", None, h::live),
        route(M::GET, "/health/ready", None, h::ready),
    ]
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "tasker admin API", description = "Create, watch and operate tasks; register templates."),
    paths(
        routes::create_task, routes::list_tasks, routes::get_task, routes::list_steps,
        routes::cancel_task,
        routes::get_step, routes::step_transitions, routes::retry_step,
        routes::resolve_step_manually, routes::complete_step,
        routes::register_template, routes::list_templates, routes::get_template,
        routes::validate_template, routes::list_queues, routes::live, routes::ready,
        events::task_events, ops::analytics, ops::list_archive, ops::requeue, metrics::metrics,
        wasm::upload_handler, wasm::list_handlers, wasm::get_handler, wasm::delete_handler,
    ),
    components(schemas(ErrorBody, Permission, events::TaskStateEvent, events::StepStateEvent,
        wasm::ComponentBytes, wasm::HandlerAccepted, wasm::HandlerList, tasker_store::component::ComponentMeta)),
    modifiers(&BearerAuth, &AuthResponses),
    tags(
        (name = "tasks"), (name = "steps"), (name = "templates"), (name = "queues"), (name = "analytics"), (name = "health"), (name = "handlers"),
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

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

const DOCS_HTML: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>tasker admin API</title></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script>
</body></html>"#;

async fn docs() -> axum::response::Html<&'static str> {
    axum::response::Html(DOCS_HTML)
}

/// Checks the bearer key and the route's permission; puts the [`Principal`]
/// in the request's extensions.
async fn authorize(
    State((state, needed)): State<(ApiState, Option<Permission>)>,
    mut req: Request,
    next: Next,
) -> Result<Response, HttpError> {
    let Some(needed) = needed else {
        return Ok(next.run(req).await);
    };
    let principal = match &state.auth {
        AuthMode::Disabled => Principal {
            name: "anonymous".into(),
            permissions: vec![Permission::Admin],
        },
        AuthMode::Keys { bootstrap } => {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .ok_or_else(|| {
                    HttpError::unauthorized("missing `Authorization: Bearer <api key>` header")
                })?;
            keys::verify(&state.pool, presented, bootstrap.as_deref())
                .await?
                .ok_or_else(|| HttpError::unauthorized("invalid or revoked API key"))?
        }
    };
    if !principal.allows(needed) {
        return Err(
            HttpError::forbidden(format!("this API key lacks the permission `{needed}`"))
                .with_details(serde_json::json!({ "required": needed.as_str() })),
        );
    }
    tracing::debug!(key = %principal.name, "authorized");
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// Turns any error response that is not already JSON (unknown route, 405,
/// 413 from the body limit, 408 from the timeout) into the error shape.
async fn error_shape(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let (parts, _) = res.into_parts();
        let mut fresh = HttpError::from_status(status).into_response();
        for name in [
            header::ALLOW,
            header::HeaderName::from_static("x-request-id"),
        ] {
            if let Some(v) = parts.headers.get(&name) {
                fresh.headers_mut().insert(name, v.clone());
            }
        }
        return fresh;
    }
    res
}

/// PostgreSQL cannot store a NUL character, so a path or query parameter
/// holding one (`%00`) is a 400 naming the parameter, never a database error.
async fn reject_nul_params(
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Result<Response, HttpError> {
    let in_path = params.ok().and_then(|p| {
        p.iter()
            .find(|(_, v)| v.contains('\0'))
            .map(|(k, _)| k.to_string())
    });
    let in_query = || {
        req.uri().query().and_then(|q| {
            q.split('&')
                .find(|pair| pair.to_ascii_lowercase().contains("%00"))
                .map(|pair| pair.split('=').next().unwrap_or(pair).to_string())
        })
    };
    if let Some(field) = in_path.or_else(in_query) {
        return Err(HttpError::bad_request(format!(
            "parameter `{field}` contains a NUL character (%00)"
        ))
        .with_details(serde_json::json!({ "field": field })));
    }
    Ok(next.run(req).await)
}

async fn not_found() -> HttpError {
    HttpError::not_found("no such route")
}

/// The API's router, with its middleware, ready to serve.
pub fn router(state: ApiState) -> Router {
    let mut app: Router<ApiState> = Router::new();
    // Component uploads may be larger than other bodies: the outer limit is
    // the larger of the two, each route applies its own.
    let upload_limit = state.wasm.max_component_bytes;
    let outer_limit = state.body_limit_bytes.max(upload_limit);
    for r in routes() {
        let layer = middleware::from_fn_with_state((state.clone(), r.permission), authorize);
        let limit = match (r.method == Method::PUT, r.path) {
            (true, wasm::UPLOAD_PATH) => upload_limit,
            _ => state.body_limit_bytes,
        };
        let endpoint = r
            .endpoint
            .route_layer(middleware::from_fn(reject_nul_params))
            .route_layer(layer)
            .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(limit))
            .layer::<_, std::convert::Infallible>(RequestBodyLimitLayer::new(limit));
        app = app.route(r.path, endpoint);
    }
    let request_id = header::HeaderName::from_static("x-request-id");
    app.route("/openapi.json", axum::routing::get(openapi_json))
        .route("/docs", axum::routing::get(docs))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(outer_limit))
        .layer(RequestBodyLimitLayer::new(outer_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ))
        .layer(middleware::from_fn(error_shape))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), uri = %req.uri(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Binds `web.bind` and serves the API until `shutdown` is cancelled.
/// Returns the address actually bound (port 0 picks one) and the server task.
pub async fn serve(
    pool: PgPool,
    config: &TaskerConfig,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<std::io::Result<()>>), ApiError> {
    metrics::install();
    let state = ApiState::from_config(pool, config);
    if matches!(state.auth, AuthMode::Disabled) {
        tracing::warn!("HTTP API authentication is DISABLED (web.auth.enabled = false): anyone who can reach {} can drive tasker", config.web.bind);
    }
    let bind_err = |source| ApiError::Bind {
        addr: config.web.bind.clone(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(&config.web.bind)
        .await
        .map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    let app = router(state);
    tracing::info!(%addr, "HTTP API listening");
    let handle = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    Ok((addr, handle))
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
        for r in routes().iter().filter(|r| r.permission.is_some()) {
            let op = &spec["paths"][r.path][r.method.as_str().to_lowercase()];
            assert!(
                op["security"].is_array(),
                "{} {} has no security requirement",
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
