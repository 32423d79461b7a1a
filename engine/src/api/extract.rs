//! Extractors whose rejections use the API's error shape.

use axum::extract::{FromRequest, FromRequestParts};

use super::error::HttpError;

/// `axum::Json` with rejections as [`HttpError`] (422 naming the field, 400
/// for malformed JSON, 413 over the body limit).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(HttpError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path` with rejections as [`HttpError`] (400 naming the parameter).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(HttpError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` with rejections as [`HttpError`] (400 naming the parameter).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(HttpError))]
pub struct ApiQuery<T>(pub T);
