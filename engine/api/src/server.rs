//! Serving: the router (every route with its middleware and limits, the spec
//! and docs pages) and [`serve`], which binds and runs it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, Method, StatusCode};
use axum::middleware;
use axum::Router;
use sqlx::PgPool;
use tasker_config::TaskerConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::connections::{self, ConnectionLimits};
use crate::keys::Permission;
use crate::openapi::{docs, openapi_json, redoc_js};
use crate::request_middleware::{authorize, error_shape, not_found, reject_nul_params};
use crate::{components, metrics, routes, ApiState, AuthMode};
use tasker_notify::Wakeups;

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

/// The API's router, with its middleware, ready to serve.
pub fn router(state: ApiState) -> Router {
    let mut app: Router<ApiState> = Router::new();
    // Component uploads may be larger than other bodies: the outer limit is
    // the larger of the two, each route applies its own.
    let upload_limit = state.components.max_component_bytes;
    let outer_limit = state.body_limit_bytes.max(upload_limit);
    for r in routes() {
        let permission = match r.path {
            "/metrics" if state.metrics_requires_key => Some(Permission::TasksRead),
            _ => r.permission,
        };
        let layer = middleware::from_fn_with_state((state.clone(), permission, r.scope), authorize);
        let limit = match (r.method == Method::PUT, r.path) {
            (true, components::UPLOAD_PATH) => upload_limit,
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
        .route("/docs/redoc.standalone.js", axum::routing::get(redoc_js))
        .merge(crate::ui::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(outer_limit))
        .layer(RequestBodyLimitLayer::new(outer_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ))
        .layer(middleware::from_fn(error_shape))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().on_failure(()).make_span_with(|req: &Request| {
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
    wakeups: Wakeups,
    config: &TaskerConfig,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<std::io::Result<()>>), ApiError> {
    metrics::install();
    let state = ApiState::from_config(pool, wakeups, config);
    match &state.auth {
        AuthMode::Disabled => {
            tracing::warn!("HTTP API authentication is DISABLED (web.auth.enabled = false): anyone who can reach {} can drive tasker", config.web.bind);
        }
        AuthMode::Keys { bootstrap: Some(_) } => {
            match tasker_store::api_key::any_usable(&state.pool).await {
                Ok(false) => tracing::warn!(
                    "the bootstrap key (web.auth.bootstrap_key) is ACTIVE with every permission until the first API key exists: create keys with `tasker apikey create`, then remove it from the configuration"
                ),
                Ok(true) => tracing::info!(
                    "the bootstrap key is retired (API keys exist); remove web.auth.bootstrap_key from the configuration"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot tell whether the bootstrap key is retired"),
            }
        }
        AuthMode::Keys { bootstrap: None } => {}
    }
    let bind_err = |source| ApiError::Bind {
        addr: config.web.bind.clone(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(&config.web.bind)
        .await
        .map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    tokio::spawn(metrics::refresh(state.clone(), shutdown.clone()));
    let app = router(state);
    tracing::info!(%addr, "HTTP API listening (dashboard at /ui, API reference at /docs)");
    let limits = ConnectionLimits {
        max_connections: usize::try_from(config.web.max_connections).unwrap_or(usize::MAX),
        header_read_timeout: Duration::from_millis(config.web.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(config.web.idle_timeout_ms),
    };
    let handle = tokio::spawn(connections::serve(listener, app, limits, shutdown));
    Ok((addr, handle))
}
