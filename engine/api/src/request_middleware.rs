//! The middleware around the routes: bearer-key authorization, rejection of
//! NUL characters in parameters, the JSON error shape for every error
//! response, and the fallback 404.

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::HttpError;
use crate::keys::{self, Permission, Principal};
use crate::{ApiState, AuthMode};

/// Checks the bearer key and the route's permission; puts the [`Principal`]
/// in the request's extensions.
pub(crate) async fn authorize(
    State((state, needed)): State<(ApiState, Option<Permission>)>,
    mut req: Request,
    next: Next,
) -> Result<Response, HttpError> {
    let Some(needed) = needed else {
        return Ok(next.run(req).await);
    };
    // Known down: answer at once rather than after the pool's time-out.
    if let tasker_store::db::DbState::Down { since, .. } = state.wakeups.database().state() {
        return Err(HttpError::database_unavailable(format!(
            "the database is unreachable (for {}s); retry later",
            since.elapsed().as_secs()
        )));
    }
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
pub(crate) async fn error_shape(req: Request, next: Next) -> Response {
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
pub(crate) async fn reject_nul_params(
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

pub(crate) async fn not_found() -> HttpError {
    HttpError::not_found("no such route")
}
