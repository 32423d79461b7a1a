//! The dashboard's session: the API key kept in an `HttpOnly; SameSite=Strict`
//! cookie, and the cross-site request checks every cookie-authenticated
//! request passes.
//!
//! - `POST /ui/session` with `{"key": "..."}` verifies the key
//!   ([`keys::verify`]) and sets the cookie (hex of the key; `Secure` when the
//!   request came over https);
//! - `GET /ui/session` says who is signed in and with which permissions
//!   (200 either way, so the page's first request is never an error);
//! - `DELETE /ui/session` clears the cookie.
//!
//! The page then calls the `/v1` routes with the cookie: [`cookie_key`] hands
//! `authorize` the key when a request has no `Authorization` header. A
//! cookie-authenticated request with a method other than GET, HEAD or
//! OPTIONS must come from this server's own page: an `Origin` (or, without
//! one, a `Referer`) naming the `Host` it was sent to, and the header
//! `X-Tasker-UI: 1`, which a cross-site form cannot set; otherwise 403.
//! Bearer-key requests are unchanged.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::error::HttpError;
use crate::extract::ApiJson;
use crate::keys::{self, Permission};
use crate::{ApiState, AuthMode};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "tasker_session";
/// The header the page sets on every request it makes.
pub(crate) const UI_HEADER: &str = "x-tasker-ui";
/// How long a session lasts, in seconds (12 hours).
const MAX_AGE_SECONDS: u64 = 12 * 60 * 60;
/// Longest key accepted in a session (the cookie holds it hex-encoded).
const MAX_KEY_BYTES: usize = 1024;

/// The key of the session cookie, for `authorize`, when the request has no
/// `Authorization` header (a bearer key always wins). A cookie-authenticated
/// request with a state-changing method must pass [`check_same_origin`]
/// (else 403). `Ok(None)`: no cookie, or an `Authorization` header.
pub(crate) fn cookie_key(req: &Request) -> Result<Option<String>, HttpError> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return Ok(None);
    }
    let Some(key) = read_cookie(req.headers()) else {
        return Ok(None);
    };
    check_same_origin(req.method(), req.headers())?;
    Ok(Some(key))
}

/// The key held by the session cookie, if there is a well-formed one.
fn read_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| hex::decode(value.trim()).ok())
        .filter(|bytes| !bytes.is_empty() && bytes.len() <= MAX_KEY_BYTES)
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// True for the methods that change nothing (no cross-site check needed).
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The `host[:port]` of an `Origin` or `Referer` value (`scheme://authority[/...]`).
fn authority_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

/// A state-changing request must come from this server's page: its `Origin`
/// (or `Referer`) names the `Host` it was sent to, and it carries
/// `X-Tasker-UI: 1`. Safe methods pass. Otherwise 403 saying what is missing.
pub(crate) fn check_same_origin(method: &Method, headers: &HeaderMap) -> Result<(), HttpError> {
    if is_safe(method) {
        return Ok(());
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST);
    let source = text(header::ORIGIN).or_else(|| text(header::REFERER));
    let same = match (host, source.and_then(authority_of)) {
        (Some(host), Some(from)) => host.eq_ignore_ascii_case(from),
        _ => false,
    };
    if !same {
        tracing::warn!(?host, ?source, "refused a cross-site dashboard request");
        return Err(HttpError::forbidden(
            "a dashboard session may change things only from the dashboard's own origin \
             (the request's Origin or Referer must name its Host)",
        )
        .with_details(serde_json::json!({ "reason": "cross_origin" })));
    }
    if headers.get(UI_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
        return Err(HttpError::forbidden(
            "a dashboard session request that changes things must carry `X-Tasker-UI: 1`",
        )
        .with_details(serde_json::json!({ "reason": "missing_ui_header" })));
    }
    Ok(())
}

/// True when the request reached us over https (directly or through a proxy
/// saying so with `X-Forwarded-Proto`).
fn is_https(req_headers: &HeaderMap, uri: &Uri) -> bool {
    uri.scheme_str() == Some("https")
        || req_headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim() == "https"))
}

/// The `Set-Cookie` value holding `key` (or clearing the cookie when `None`).
fn set_cookie(key: Option<&str>, secure: bool) -> Result<HeaderValue, HttpError> {
    let (value, max_age) = match key {
        Some(key) => (hex::encode(key.as_bytes()), MAX_AGE_SECONDS),
        None => (String::new(), 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .map_err(|e| HttpError::internal(&e))
}

/// Body of `POST /ui/session`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    /// The API key to sign in with.
    key: String,
}

/// Body of `GET /ui/session` (and of a successful sign-in).
#[derive(Debug, Serialize)]
pub(crate) struct SessionBody {
    /// False when no valid key is held (the page shows its sign-in form).
    signed_in: bool,
    /// False when the server runs without authentication (no sign-in needed).
    auth_enabled: bool,
    /// The key's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// What the key may do (`admin` implies everything).
    permissions: Vec<Permission>,
    /// The namespaces the key is limited to; absent: every namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    namespaces: Option<Vec<String>>,
}

impl SessionBody {
    fn signed_out() -> SessionBody {
        SessionBody {
            signed_in: false,
            auth_enabled: true,
            name: None,
            permissions: Vec::new(),
            namespaces: None,
        }
    }

    fn of(principal: keys::Principal, auth_enabled: bool) -> SessionBody {
        SessionBody {
            signed_in: true,
            auth_enabled,
            name: Some(principal.name),
            permissions: principal.permissions,
            namespaces: principal.namespaces,
        }
    }
}

/// Answers with `body` and no caching.
fn no_store(status: StatusCode, body: SessionBody, cookie: Option<HeaderValue>) -> Response {
    let mut res = (status, Json(body)).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    super::assets::security_headers(headers);
    if let Some(cookie) = cookie {
        headers.insert(header::SET_COOKIE, cookie);
    }
    res
}

/// `GET /ui/session`: who the cookie signs in, if anyone.
pub(crate) async fn current(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let body = match &state.auth {
        AuthMode::Disabled => SessionBody::of(anonymous(), false),
        AuthMode::Keys { bootstrap } => match read_cookie(&headers) {
            None => SessionBody::signed_out(),
            Some(key) => match keys::verify(&state.pool, &key, bootstrap.as_deref()).await {
                Ok(Some(principal)) => SessionBody::of(principal, true),
                Ok(None) => SessionBody::signed_out(),
                Err(e) => return HttpError::from(e).into_response(),
            },
        },
    };
    no_store(StatusCode::OK, body, None)
}

fn anonymous() -> keys::Principal {
    keys::Principal::unrestricted("anonymous")
}

/// `POST /ui/session`: verifies the key and sets the session cookie; 401
/// for a key that is not valid.
pub(crate) async fn sign_in(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    ApiJson(SignIn { key }): ApiJson<SignIn>,
) -> Result<Response, HttpError> {
    check_same_origin(&Method::POST, &headers)?;
    let key = key.trim();
    let principal = match &state.auth {
        AuthMode::Disabled => anonymous(),
        AuthMode::Keys { bootstrap } => {
            let valid = if key.is_empty() || key.len() > MAX_KEY_BYTES {
                None
            } else {
                keys::verify(&state.pool, key, bootstrap.as_deref()).await?
            };
            valid.ok_or_else(|| HttpError::unauthorized("invalid or revoked API key"))?
        }
    };
    tracing::info!(key = %principal.name, "dashboard sign-in");
    let auth_enabled = matches!(state.auth, AuthMode::Keys { .. });
    let cookie = if auth_enabled {
        Some(set_cookie(Some(key), is_https(&headers, &uri))?)
    } else {
        None
    };
    Ok(no_store(
        StatusCode::OK,
        SessionBody::of(principal, auth_enabled),
        cookie,
    ))
}

/// `DELETE /ui/session`: clears the session cookie.
pub(crate) async fn sign_out(headers: HeaderMap, uri: Uri) -> Result<Response, HttpError> {
    check_same_origin(&Method::DELETE, &headers)?;
    let cookie = set_cookie(None, is_https(&headers, &uri))?;
    Ok(no_store(
        StatusCode::OK,
        SessionBody::signed_out(),
        Some(cookie),
    ))
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
