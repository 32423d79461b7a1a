//! The operator dashboard at `/ui`: a page of plain JavaScript modules
//! (`engine/api/ui/`, embedded in the binary) that signs in with an API key
//! kept in an `HttpOnly` cookie ([`session`]) and drives the `/v1` routes
//! like any client, so every action is checked by the route's own
//! permission. Not part of the documented API: these routes are not in the
//! route table or the OpenAPI spec.

mod assets;
pub(crate) mod session;

use axum::routing::get;
use axum::Router;

use crate::ApiState;

/// The dashboard's routes: the page, its files, and the session.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/ui", get(assets::index))
        .route("/ui/", get(assets::index))
        .route("/ui/assets/{file}", get(assets::asset))
        .route(
            "/ui/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
}
