//! The session cookie and the cross-site checks: header logic alone, then
//! through the router against a real database.

use super::*;
use axum::body::Body;
use axum::http::Request as HttpRequest;
use sqlx::PgPool;
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:8080";
const ORIGIN: &str = "http://127.0.0.1:8080";
const BOOT: &str = "boot-secret; with=odd chars";

/// A header name and value.
type Header<'a> = (&'a str, &'a str);

fn headers(pairs: &[Header]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

fn reason(e: HttpError) -> (StatusCode, serde_json::Value) {
    (e.status, e.body.details.unwrap()["reason"].clone())
}

#[test]
fn safe_methods_pass_and_others_need_the_origin_and_the_ui_header() {
    let none = HeaderMap::new();
    for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
        assert!(check_same_origin(&m, &none).is_ok(), "{m}");
    }
    let host = ("host", HOST);
    let ui = ("x-tasker-ui", "1");
    // (headers sent, the refusal's reason or None when accepted)
    let cases: [(&[Header], Option<&str>); 7] = [
        (&[host, ui], Some("cross_origin")),
        (
            &[host, ("origin", "http://evil.example"), ui],
            Some("cross_origin"),
        ),
        (&[host, ("origin", "null"), ui], Some("cross_origin")),
        (&[("origin", ORIGIN), ui], Some("cross_origin")),
        (&[host, ("origin", ORIGIN)], Some("missing_ui_header")),
        (&[host, ("origin", ORIGIN), ui], None),
        (
            &[host, ("referer", "http://127.0.0.1:8080/ui/#/tasks"), ui],
            None,
        ),
    ];
    for (pairs, refused) in cases {
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let got = check_same_origin(&m, &headers(pairs));
            match refused {
                None => assert!(got.is_ok(), "{m} {pairs:?}"),
                Some(why) => assert_eq!(
                    reason(got.expect_err("refused")),
                    (StatusCode::FORBIDDEN, serde_json::json!(why)),
                    "{m} {pairs:?}"
                ),
            }
        }
    }
}

#[test]
fn origins_are_compared_by_authority() {
    assert_eq!(authority_of("http://a:1"), Some("a:1"));
    assert_eq!(authority_of("https://a:1/x?y"), Some("a:1"));
    assert_eq!(authority_of("http://"), None);
    assert_eq!(authority_of("null"), None);
    assert_eq!(authority_of("ftp://a"), None);
}

#[test]
fn the_cookie_holds_the_key_hex_encoded_and_is_http_only_and_strict() {
    let cookie = set_cookie(Some(BOOT), false).unwrap();
    let text = cookie.to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(text.contains(part), "{text}");
    }
    assert!(!text.contains("Secure"), "{text}");
    assert!(set_cookie(Some(BOOT), true)
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("; Secure"));
    assert!(set_cookie(None, false)
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let value = text.split(';').next().unwrap();
    let sent = headers(&[("cookie", &format!("theme=dark; {value}; other=1"))]);
    assert_eq!(read_cookie(&sent).as_deref(), Some(BOOT));
    assert_eq!(
        read_cookie(&headers(&[("cookie", "tasker_session=zz")])),
        None
    );
    assert_eq!(
        read_cookie(&headers(&[("cookie", "tasker_session=")])),
        None
    );
    assert!(is_https(
        &headers(&[("x-forwarded-proto", "https")]),
        &Uri::from_static("/ui")
    ));
    assert!(!is_https(&HeaderMap::new(), &Uri::from_static("/ui")));
}

#[test]
fn a_bearer_key_wins_over_the_cookie_and_skips_the_cross_site_check() {
    let cookie = format!("{COOKIE}={}", hex::encode("k"));
    let req = |auth: bool| {
        let mut b = HttpRequest::post("/v1/tasks").header("cookie", &cookie);
        if auth {
            b = b.header("authorization", "Bearer other");
        }
        b.body(Body::empty()).unwrap()
    };
    assert_eq!(cookie_key(&req(true)).unwrap(), None);
    assert_eq!(
        reason(cookie_key(&req(false)).expect_err("no origin")).0,
        StatusCode::FORBIDDEN
    );
    let get = HttpRequest::get("/v1/tasks")
        .header("cookie", &cookie)
        .body(Body::empty())
        .unwrap();
    assert_eq!(cookie_key(&get).unwrap().as_deref(), Some("k"));
}

// ------------------------------------------------------------ through the router

async fn app(pool: &PgPool) -> axum::Router {
    app_with(pool, true).await
}

async fn app_with(pool: &PgPool, auth: bool) -> axum::Router {
    tasker_store::migrate::migrate(pool).await.unwrap();
    let mut config = tasker_config::TaskerConfig::from_toml_str("").unwrap();
    config.web.auth.enabled = auth;
    config.web.auth.bootstrap_key = Some(tasker_config::Secret::new(BOOT));
    let wakeups = tasker_notify::Wakeups::new(pool);
    crate::router(ApiState::from_config(pool.clone(), wakeups, &config))
}

/// Sends a request to `app` with `Host`, and optionally the session cookie
/// for `key`, same-origin headers and a body; returns status, headers, JSON.
async fn send(
    app: &axum::Router,
    method: Method,
    path: &str,
    key: Option<&str>,
    same_origin: bool,
    body: Option<serde_json::Value>,
) -> (StatusCode, HeaderMap, serde_json::Value) {
    let mut b = HttpRequest::builder()
        .method(method)
        .uri(path)
        .header("host", HOST);
    if let Some(key) = key {
        b = b.header("cookie", format!("{COOKIE}={}", hex::encode(key)));
    }
    if same_origin {
        b = b.header("origin", ORIGIN).header("x-tasker-ui", "1");
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let res = app.clone().oneshot(b.body(body).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status, parts.headers, json)
}

const TEMPLATE: &str = r#"{"namespace":"ui","name":"t","version":"1.0.0","steps":[{"name":"a","handler":{"name":"h"}}]}"#;

#[sqlx::test(migrations = false)]
async fn the_cookie_authenticates_reads_and_same_origin_writes_only(pool: PgPool) {
    let app = app(&pool).await;
    let template: serde_json::Value = serde_json::from_str(TEMPLATE).unwrap();
    // No cookie, no key: 401, as before.
    let (status, _, _) = send(&app, Method::GET, "/v1/templates", None, false, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The cookie alone authenticates a read.
    let (status, _, body) = send(&app, Method::GET, "/v1/templates", Some(BOOT), false, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A write with the cookie but without Origin and X-Tasker-UI: 403.
    let validate = "/v1/templates/validate";
    let (status, _, body) = send(
        &app,
        Method::POST,
        validate,
        Some(BOOT),
        false,
        Some(template.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["details"]["reason"], "cross_origin");
    // From the page: accepted.
    let (status, _, body) = send(
        &app,
        Method::POST,
        validate,
        Some(BOOT),
        true,
        Some(template),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A wrong key in the cookie: 401.
    let (status, _, _) = send(
        &app,
        Method::GET,
        "/v1/templates",
        Some("tk_0_1"),
        false,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = false)]
async fn sign_in_says_who_and_a_read_only_session_is_refused_actions(pool: PgPool) {
    let app = app(&pool).await;
    let (status, _, body) = send(&app, Method::GET, "/ui/session", None, false, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["signed_in"], false);
    let sign_in = |key: &str| serde_json::json!({ "key": key });
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/ui/session",
        None,
        true,
        Some(sign_in("wrong")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Sign-in itself must come from the page.
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/ui/session",
        None,
        false,
        Some(sign_in(BOOT)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (reader_id, reader) = keys::create_key(
        &pool,
        &keys::KeySpec::new("reader", &[Permission::TasksRead]),
    )
    .await
    .unwrap();
    let (status, headers, body) = send(
        &app,
        Method::POST,
        "/ui/session",
        None,
        true,
        Some(sign_in(&reader)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "reader");
    assert_eq!(body["permissions"], serde_json::json!(["tasks:read"]));
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with(&format!("{COOKIE}={}", hex::encode(&reader))));
    let (_, _, body) = send(&app, Method::GET, "/ui/session", Some(&reader), false, None).await;
    assert_eq!(
        (body["signed_in"].clone(), body["name"].clone()),
        (true.into(), "reader".into())
    );
    // A forged action from the page with the read-only session: the route's
    // own permission check refuses it.
    let cancel = format!("/v1/tasks/{reader_id}/cancel");
    let (status, _, body) = send(&app, Method::POST, &cancel, Some(&reader), true, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["details"]["required"], "tasks:cancel");
    // Signing out clears the cookie.
    let (status, headers, _) = send(
        &app,
        Method::DELETE,
        "/ui/session",
        Some(&reader),
        true,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    // The page itself is served with its policy.
    let (status, headers, _) = send(&app, Method::GET, "/ui", None, false, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        super::super::assets::CSP
    );
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
}

#[sqlx::test(migrations = false)]
async fn without_authentication_the_page_needs_no_sign_in(pool: PgPool) {
    let app = app_with(&pool, false).await;
    let (status, headers, body) = send(&app, Method::GET, "/ui/session", None, false, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        (body["signed_in"].clone(), body["auth_enabled"].clone()),
        (true.into(), false.into()),
        "{body}"
    );
    assert_eq!(body["permissions"], serde_json::json!(["admin"]));
    let (status, _, body) = send(&app, Method::GET, "/v1/templates", None, false, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
