//! Template routes: register (YAML or JSON), validate, list, get.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use crate::error::{ErrorBody, HttpError};
use crate::extract::ApiPath;
use crate::types::*;
use crate::ApiState;
use tasker_model::template::Template;
use tasker_store::template as tstore;

/// Parses a template body: YAML for `application/yaml` / `text/yaml`
/// (and `application/x-yaml`), JSON otherwise.
fn parse_template(headers: &HeaderMap, body: &Bytes) -> Result<Template, HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_yaml = matches!(
        content_type.as_str(),
        "application/yaml" | "text/yaml" | "application/x-yaml" | "text/x-yaml"
    );
    let result = if is_yaml {
        let text = std::str::from_utf8(body)
            .map_err(|e| HttpError::bad_request(format!("template body is not UTF-8: {e}")))?;
        Template::from_yaml_str(text, "<request body>")
    } else {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {e}"),
            )
        })?;
        Template::from_json_value(value)
    };
    result.map_err(|e| HttpError::unprocessable(e.to_string()))
}

fn levels(t: &Template) -> Vec<StepLevel> {
    t.levels()
        .into_iter()
        .map(|(step, level)| StepLevel { step, level })
        .collect()
}

/// Registers a template version (YAML or JSON). Versions are immutable.
#[utoipa::path(post, path = "/v1/templates", tag = "templates",
    request_body(description = "A task template", content(
        (Object = "application/json"),
        (String = "application/yaml"),
        (String = "text/yaml"))),
    responses(
        (status = 201, description = "Registered", body = TemplateAccepted),
        (status = 200, description = "The identical definition was already registered", body = TemplateAccepted),
        (status = 400, description = "Malformed JSON or non-UTF-8 YAML", body = ErrorBody),
        (status = 409, description = "This version is registered with a different definition", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "The template is invalid; the message names the problem", body = ErrorBody),
    ),
    security(("bearer" = ["templates:write"])))]
pub async fn register_template(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, HttpError> {
    let template = parse_template(&headers, &body)?;
    let unserved = super::workers::unserved_steps(&state, &template).await?;
    let registered = tstore::register(&state.pool, &template).await?;
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(TemplateAccepted {
            key: template.key(),
            created: registered.created,
            levels: levels(&template),
            unserved,
        }),
    ))
}

/// Validates a template without registering it; returns each step's DAG level.
#[utoipa::path(post, path = "/v1/templates/validate", tag = "templates",
    request_body(description = "A task template", content(
        (Object = "application/json"),
        (String = "application/yaml"),
        (String = "text/yaml"))),
    responses(
        (status = 200, description = "Valid", body = TemplateAccepted),
        (status = 400, description = "Malformed JSON or non-UTF-8 YAML", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "The template is invalid; the message names the problem", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn validate_template(
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TemplateAccepted>, HttpError> {
    let template = parse_template(&headers, &body)?;
    Ok(Json(TemplateAccepted {
        key: template.key(),
        created: false,
        levels: levels(&template),
        unserved: Vec::new(),
    }))
}

/// Every registered template version.
#[utoipa::path(get, path = "/v1/templates", tag = "templates",
    responses(
        (status = 200, description = "The templates", body = TemplateList),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_templates(
    State(state): State<ApiState>,
) -> Result<Json<TemplateList>, HttpError> {
    Ok(Json(TemplateList {
        templates: tstore::list(&state.pool).await?,
    }))
}

/// One registered template version's definition.
#[utoipa::path(get, path = "/v1/templates/{namespace}/{name}/{version}", tag = "templates",
    params(("namespace" = String, Path), ("name" = String, Path),
           ("version" = String, Path, description = "`MAJOR.MINOR.PATCH`, or `latest`")),
    responses(
        (status = 200, description = "The template definition", body = Object),
        (status = 400, description = "Invalid path parameter", body = ErrorBody),
        (status = 404, description = "Not registered", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn get_template(
    State(state): State<ApiState>,
    ApiPath((namespace, name, version)): ApiPath<(String, String, String)>,
) -> Result<Json<serde_json::Value>, HttpError> {
    let version = (version != "latest").then_some(version);
    let loaded = state
        .templates
        .get(&state.pool, &namespace, &name, version.as_deref())
        .await?;
    let value = serde_json::to_value(&loaded.template).map_err(|e| HttpError::internal(&e))?;
    Ok(Json(value))
}
