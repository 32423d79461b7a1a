//! The one error shape of the API, `{"error": code, "message": ..., "details": ...}`,
//! and the mapping of every failure (store errors, extractor rejections,
//! auth) onto it. A database that cannot be reached (refused or lost
//! connections, pool time-outs, a server shutting down or starting up) is
//! `503 unavailable` with `Retry-After`, not a 500: the request may succeed
//! when retried.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use tasker_api_types::ErrorBody;

use tasker_model::state::TransitionError;
use tasker_store::db::Unavailable;
use tasker_store::queue::QueueError;
use tasker_store::{StoreError, StoreTransitionError};

/// The `Retry-After` of a response saying the database is unavailable, in
/// seconds: a restarted server is usually back within seconds, and the
/// process tries it again at least once a second.
pub const RETRY_AFTER_SECONDS: u64 = 2;

/// An error response: a status and an [`ErrorBody`].
#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
}

impl HttpError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            body: ErrorBody {
                error: code.to_string(),
                message: message.into(),
                details: None,
            },
            retry_after: None,
        }
    }

    /// A 503 saying the database cannot be reached now, with
    /// `Retry-After: RETRY_AFTER_SECONDS`.
    pub fn database_unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(RETRY_AFTER_SECONDS);
        e
    }

    /// A 503 saying the server is at a configured limit now, with
    /// `Retry-After: 1`.
    pub fn busy(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message);
        e.retry_after = Some(1);
        e
    }

    /// `Retry-After` of this response, in seconds, if it has one.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// Adds `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.body.details = Some(details);
        self
    }

    /// This error as the error of task `index` of a batch: the message
    /// begins `tasks[index]: `, and `details.index` names it.
    pub fn in_batch(mut self, index: usize) -> Self {
        self.body.message = format!("tasks[{index}]: {}", self.body.message);
        let mut details = match self.body.details.take() {
            Some(Value::Object(m)) => m,
            _ => Default::default(),
        };
        details.insert("index".into(), index.into());
        self.with_details(Value::Object(details))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A 500 that says nothing about the cause; the cause is logged.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error serving a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log for this request id",
        )
    }

    /// The code used for a bare status (fallbacks, middleware responses).
    pub fn from_status(status: StatusCode) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_server_error() => "internal",
            _ => "error",
        };
        let message = status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string();
        Self::new(status, code, message)
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status, self.body.error, self.body.message
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        let msg = e.to_string();
        match e {
            StoreError::TemplateNotFound { .. }
            | StoreError::TaskNotFound(_)
            | StoreError::StepNotFound(_)
            | StoreError::ScheduleNotFound(_)
            | StoreError::NamespaceNotFound(_) => HttpError::not_found(msg),
            StoreError::InputRejected { .. } | StoreError::Template(_) => {
                HttpError::unprocessable(msg)
            }
            StoreError::TemplateConflict { .. } | StoreError::ScheduleConflict { .. } => {
                HttpError::new(StatusCode::CONFLICT, "conflict", msg)
            }
            StoreError::Transition(t) => match t {
                StoreTransitionError::Transition(
                    TransitionError::Illegal { .. } | TransitionError::StateChanged { .. },
                ) => HttpError::new(StatusCode::CONFLICT, "invalid_state", msg),
                StoreTransitionError::NotFound { .. } => HttpError::not_found(msg),
                StoreTransitionError::Sql(e) => e.into(),
                other => HttpError::internal(&other),
            },
            StoreError::Queue(QueueError::BadName(_)) => HttpError::unprocessable(msg),
            StoreError::Queue(QueueError::Sql(e)) | StoreError::Sql(e) => e.into(),
            StoreError::InvalidRequest { field, .. } => {
                HttpError::unprocessable(msg).with_details(serde_json::json!({ "field": field }))
            }
            StoreError::Corrupt(_) | StoreError::ResultRolledBack { .. } => {
                HttpError::internal(&msg)
            }
            StoreError::Unavailable(_) => {
                HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", msg)
            }
            StoreError::InBatch { index, source } => HttpError::from(*source).in_batch(index),
        }
    }
}

impl From<sqlx::Error> for HttpError {
    fn from(e: sqlx::Error) -> Self {
        // Not logged one by one: during an outage every request fails so,
        // and the process logs the outage once (`tasker_store::db::Availability`).
        if e.is_unavailable() {
            tracing::debug!(error = %e, "the database is unavailable; answering 503");
            return HttpError::database_unavailable(format!(
                "the database is unavailable ({e}); retry in {RETRY_AFTER_SECONDS} s"
            ));
        }
        if matches!(e, sqlx::Error::PoolClosed) {
            return HttpError::database_unavailable("the server is shutting down");
        }
        // Text PostgreSQL cannot store (a NUL character, `\u0000` in JSON,
        // or bytes that are not UTF-8) is the client's input, not a fault.
        let code = e.as_database_error().and_then(|d| d.code());
        if matches!(code.as_deref(), Some("22021" | "22P05")) {
            return HttpError::unprocessable(format!(
                "the request contains text PostgreSQL cannot store (such as a NUL character): {e}"
            ));
        }
        HttpError::internal(&e)
    }
}

impl From<JsonRejection> for HttpError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let fallback = HttpError::from_status(status).body.error;
        let code = match &r {
            JsonRejection::JsonDataError(_) => "validation_failed",
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ => fallback.as_str(),
        };
        HttpError::new(status, code, r.body_text())
    }
}

impl From<BytesRejection> for HttpError {
    fn from(r: BytesRejection) -> Self {
        let status = r.status();
        HttpError::new(
            status,
            &HttpError::from_status(status).body.error,
            r.body_text(),
        )
    }
}

impl From<PathRejection> for HttpError {
    fn from(r: PathRejection) -> Self {
        // Every path parameter is an id or a name: a bad one is a 400.
        let status = if r.status().is_server_error() {
            r.status()
        } else {
            StatusCode::BAD_REQUEST
        };
        let code = if status.is_server_error() {
            "internal"
        } else {
            "invalid_path"
        };
        HttpError::new(status, code, r.body_text())
    }
}

impl HttpError {
    /// A path rejection naming the parameter: `names` are the route's
    /// parameter names in order (a tuple's error gives only an index).
    pub fn from_path_rejection(r: PathRejection, names: &[String]) -> Self {
        use axum::extract::path::ErrorKind;
        let field = match &r {
            PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                ErrorKind::ParseErrorAtKey { key, .. }
                | ErrorKind::InvalidUtf8InPathParam { key }
                | ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
                ErrorKind::ParseErrorAtIndex { index, .. } => names.get(*index).cloned(),
                ErrorKind::ParseError { .. } if names.len() == 1 => names.first().cloned(),
                _ => None,
            },
            _ => None,
        };
        let mut e = HttpError::from(r);
        if let Some(field) = field {
            if !e.status.is_server_error() {
                e.body.message = format!("path parameter `{field}`: {}", e.body.message);
                e = e.with_details(serde_json::json!({ "field": field }));
            }
        }
        e
    }
}

impl From<QueryRejection> for HttpError {
    fn from(r: QueryRejection) -> Self {
        HttpError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

/// Parses a JSON body into `T`, naming the offending field on failure
/// (422 for a wrong shape, 400 for text that is not JSON).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {inner}"),
            )
        } else {
            let message = if path == "." {
                format!("invalid request body: {inner}")
            } else {
                format!("invalid request body at `{path}`: {inner}")
            };
            HttpError::unprocessable(message).with_details(serde_json::json!({ "field": path }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_503_with_retry_after() {
        let refused =
            || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        for e in [
            HttpError::from(sqlx::Error::PoolTimedOut),
            HttpError::from(refused()),
            HttpError::from(StoreError::Sql(refused())),
            HttpError::from(StoreError::Queue(QueueError::Sql(
                sqlx::Error::PoolTimedOut,
            ))),
            HttpError::from(StoreError::Transition(StoreTransitionError::Sql(
                sqlx::Error::PoolTimedOut,
            ))),
        ] {
            assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE, "{e}");
            assert_eq!(e.body.error, "unavailable");
            let res = e.into_response();
            assert_eq!(
                res.headers().get(header::RETRY_AFTER).unwrap(),
                &RETRY_AFTER_SECONDS.to_string()
            );
        }
        let other = HttpError::from(sqlx::Error::RowNotFound);
        assert_eq!(other.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(other
            .into_response()
            .headers()
            .get(header::RETRY_AFTER)
            .is_none());
    }
}
