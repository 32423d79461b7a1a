//! Extractors whose rejections use the API's error shape.

use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::HttpError;

/// `axum::Json` with rejections as [`HttpError`] (422 naming the field, 400
/// for malformed JSON, 413 over the body limit).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(HttpError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path` with rejections as [`HttpError`] (400 naming the
/// parameter in the message and in `details.field`).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                // The names in route order: a tuple's error gives only an index.
                let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|p| p.iter().map(|(k, _)| k.to_string()).collect())
                    .unwrap_or_default();
                Err(HttpError::from_path_rejection(rejection, &names))
            }
        }
    }
}

/// `axum::extract::Query` with rejections as [`HttpError`] (400 naming the parameter).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(HttpError))]
pub struct ApiQuery<T>(pub T);

/// [`ApiJson`] for bodies whose values must arrive unchanged (a task's
/// input): the same content-type, syntax and size checks, then the text is
/// read with `tasker_model::step::parse_json_exact`, so an integer beyond 64
/// bits, a NUL character or a repeated key is refused (422, naming where)
/// rather than silently changed.
#[derive(Debug)]
pub struct ExactJson<T>(pub T);

impl<T, S> FromRequest<S> for ExactJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, HttpError> {
        let ApiJson(raw) =
            ApiJson::<Box<serde_json::value::RawValue>>::from_request(req, state).await?;
        tasker_model::step::parse_json_exact(raw.get()).map_err(|problem| {
            HttpError::unprocessable(format!(
                "the body cannot be stored exactly {problem}; send such numbers as strings"
            ))
        })?;
        // Nothing inexact is left: read the shape, naming a bad field.
        super::error::parse_json(raw.get().as_bytes()).map(ExactJson)
    }
}
