//! The dashboard's files (`engine/api/ui/`), embedded in the binary and
//! served with a strict Content-Security-Policy (nothing but this origin, no
//! inline script), `nosniff`, no referrer, and an ETag per file (the browser
//! revalidates each load; an unchanged file is a 304).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::HttpError;

/// One embedded file.
pub(crate) struct Asset {
    /// Its name under `/ui/assets/`.
    pub(crate) name: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard; `index.html` is served at `/ui`.
pub(crate) const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("lib.js", JS),
    asset!("charts.js", JS),
    asset!("overview.js", JS),
    asset!("tasks.js", JS),
    asset!("task.js", JS),
    asset!("catalog.js", JS),
];

/// The Content-Security-Policy of every dashboard response: this origin
/// only, no inline script or style, no framing.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The ETag of each asset (a quoted prefix of its sha256), in [`ASSETS`] order.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body))[..20]))
            .collect()
    })
}

/// Adds the headers every dashboard response carries.
pub(crate) fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Serves asset number `index`: 304 when the browser holds this version.
fn serve(index: usize, request: &HeaderMap) -> Response {
    let (asset, etag) = (&ASSETS[index], &etags()[index]);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = res.headers_mut();
    security_headers(headers);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    res
}

/// `GET /ui`: the dashboard's page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// `GET /ui/assets/{file}`: one of the dashboard's files.
pub(crate) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == file) {
        Some(index) => serve(index, &headers),
        None => HttpError::not_found(format!("no dashboard file named '{file}'")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_named_once_and_referenced_by_the_page() {
        let page = std::str::from_utf8(ASSETS[0].body).expect("utf-8");
        for a in &ASSETS[1..] {
            assert_eq!(ASSETS.iter().filter(|b| b.name == a.name).count(), 1);
            assert!(!a.body.is_empty(), "{} is empty", a.name);
        }
        for linked in ["/ui/assets/style.css", "/ui/assets/app.js"] {
            assert!(page.contains(linked), "index.html does not link {linked}");
        }
        assert!(
            !page.contains("<script>") && !page.contains(" style="),
            "no inline script or style (the CSP forbids them)"
        );
    }

    /// The dashboard stays small: every file together under 160 KiB.
    #[test]
    fn the_embedded_files_stay_small() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        eprintln!("dashboard assets: {total} bytes in {} files", ASSETS.len());
        assert!(total < 160 * 1024, "the dashboard grew to {total} bytes");
    }

    #[test]
    fn nothing_is_fetched_from_another_origin() {
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).expect("utf-8");
            for scheme in ["http://", "https://", "//cdn"] {
                let allowed = |at: usize| text[at..].starts_with("http://www.w3.org/");
                let found = text.match_indices(scheme).any(|(at, _)| !allowed(at));
                assert!(!found, "{} names an outside URL ({scheme})", a.name);
            }
        }
    }

    #[test]
    fn an_unchanged_asset_is_a_304_with_the_same_etag() {
        let first = serve(3, &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        assert_eq!(first.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(first.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(first.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag.clone());
        let second = serve(3, &again);
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(second.headers()[header::ETAG], etag);
    }
}
