//! The middleware around the routes: bearer-key authorization, rejection of
//! NUL characters in parameters, the JSON error shape for every error
//! response, and the fallback 404.

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::HttpError;
use crate::keys::{self, Permission, Principal};
use crate::scope::{self, Scope};
use crate::{ApiState, AuthMode};

/// Checks the bearer key and the route's permission; puts the [`Principal`]
/// in the request's extensions.
pub(crate) async fn authorize(
    State((state, needed, scope)): State<(ApiState, Option<Permission>, Scope)>,
    req: Request,
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
        AuthMode::Disabled => {
            refuse_cross_site(&req)?;
            Principal::unrestricted("anonymous")
        }
        AuthMode::Keys { bootstrap } => {
            // Without an `Authorization` header, the dashboard's session
            // cookie (cross-site checked; `ui::session`).
            let from_cookie = crate::ui::session::cookie_key(&req)?;
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .or(from_cookie.as_deref())
                .ok_or_else(|| {
                    HttpError::unauthorized("missing `Authorization: Bearer <api key>` header")
                })?;
            keys::verify(&state.pool, presented, bootstrap.as_deref())
                .await?
                .ok_or_else(|| HttpError::unauthorized("invalid, revoked or expired API key"))?
        }
    };
    if !principal.allows(needed) {
        return Err(
            HttpError::forbidden(format!("this API key lacks the permission `{needed}`"))
                .with_details(serde_json::json!({ "required": needed.as_str() })),
        );
    }
    let (mut parts, body) = req.into_parts();
    scope::enforce(&state, &principal, scope, &mut parts).await?;
    tracing::debug!(key = %principal.name, "authorized");
    parts.extensions.insert(principal);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// With authentication off, anything that reaches the port may act, and so
/// might a web page in a browser on that host: a cross-site form or
/// `fetch(..., {mode: "no-cors"})` sends a "simple" request without a CORS
/// preflight. So a mutating request must not come from another origin
/// (`Origin`, which browsers send on every such request, must be absent or
/// this server's `Host`) and must not have a content type a form can send.
pub(crate) fn refuse_cross_site(req: &Request) -> Result<(), HttpError> {
    if matches!(
        req.method(),
        &Method::GET | &Method::HEAD | &Method::OPTIONS
    ) {
        return Ok(());
    }
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return Err(HttpError::forbidden(format!(
                "cross-origin request refused (Origin {origin:?}, Host {host:?}): with authentication off only same-origin or non-browser clients may change anything"
            )));
        }
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| {
            matches!(
                t.as_str(),
                "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
            )
        });
    if form_type {
        return Err(HttpError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a form content type (text/plain, urlencoded, multipart) is refused on changes: send application/json (or the route's own type)",
        ));
    }
    Ok(())
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
