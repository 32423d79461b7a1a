//! Template routes: register (YAML or JSON), validate, list, get.
//!
//! A template body is parsed off the async runtime, on a blocking thread
//! ([`tokio::task::spawn_blocking`]), within the `[templates]` limits
//! ([`TemplateLimits`]: size, depth, aliases and their expansion, steps,
//! dependencies), at most `templates.max_concurrent_parses` at once and within
//! `templates.parse_timeout_ms`. The limits make every parse linear in the
//! body; the slots keep parses from taking every core from the runtime; the
//! budget bounds the wait of a request.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use tokio::sync::Semaphore;

use crate::error::{ErrorBody, HttpError};
use crate::extract::{ApiPath, ApiQuery};
use crate::keys::Principal;
use crate::scope;
use crate::types::*;
use crate::ApiState;
use tasker_config::TemplatesConfig;
use tasker_model::template::{scan_json, Template, TemplateError, TemplateLimits};
use tasker_store::template as tstore;

/// How template bodies are parsed: limits, time budget and slots.
#[derive(Debug, Clone)]
pub struct TemplateParsing {
    /// The limits every body is parsed within.
    pub limits: TemplateLimits,
    /// Time budget of one parse, waiting for a slot included.
    pub budget: Duration,
    /// Slots: parses running at once.
    slots: Arc<Semaphore>,
    max_concurrent: usize,
}

fn to_usize<T: TryInto<usize>>(value: T) -> usize {
    value.try_into().unwrap_or(usize::MAX)
}

impl TemplateParsing {
    /// From `[templates]`.
    pub fn from_config(config: &TemplatesConfig) -> Self {
        let max_concurrent = to_usize(config.max_concurrent_parses).max(1);
        TemplateParsing {
            limits: TemplateLimits {
                max_bytes: to_usize(config.max_bytes),
                max_depth: to_usize(config.max_depth),
                max_aliases: to_usize(config.max_aliases),
                max_expanded_bytes: to_usize(config.max_expanded_bytes),
                max_steps: to_usize(config.max_steps),
                max_edges: to_usize(config.max_edges),
            },
            budget: Duration::from_millis(config.parse_timeout_ms),
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
        }
    }
}

impl Default for TemplateParsing {
    fn default() -> Self {
        TemplateParsing::from_config(&TemplatesConfig::default())
    }
}

/// The process's template parsing; `None` until [`configure`]d (then the
/// defaults of `[templates]` apply). Slots are a process resource, like the
/// blocking threads they bound.
static PARSING: RwLock<Option<TemplateParsing>> = RwLock::new(None);

/// Sets the limits, budget and slots of template parsing in this process from
/// `[templates]`; `ApiState::from_config` calls it with the
/// server's configuration.
pub fn configure(config: &TemplatesConfig) {
    let parsing = TemplateParsing::from_config(config);
    match PARSING.write() {
        Ok(mut current) => *current = Some(parsing),
        Err(poisoned) => *poisoned.into_inner() = Some(parsing),
    }
}

/// The template parsing in force.
pub fn parsing() -> TemplateParsing {
    let read = |current: &Option<TemplateParsing>| current.clone();
    let configured = match PARSING.read() {
        Ok(current) => read(&current),
        Err(poisoned) => read(&poisoned.into_inner()),
    };
    configured.unwrap_or_else(|| {
        let parsing = TemplateParsing::default();
        match PARSING.write() {
            Ok(mut current) => current.get_or_insert(parsing).clone(),
            Err(poisoned) => poisoned.into_inner().get_or_insert(parsing).clone(),
        }
    })
}

/// Whether the body is YAML: `application/yaml` / `text/yaml` (and the `x-`
/// forms); anything else is JSON.
fn is_yaml(headers: &HeaderMap) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        content_type.as_str(),
        "application/yaml" | "text/yaml" | "application/x-yaml" | "text/x-yaml"
    )
}

/// A template error as a 422; a limit is named in `details.limit`.
fn invalid(e: &TemplateError) -> HttpError {
    let err = HttpError::unprocessable(e.to_string());
    match e.limit() {
        Some(limit) => err.with_details(serde_json::json!({ "limit": limit })),
        None => err,
    }
}

/// Parses a template body within `limits`: YAML or JSON (see [`is_yaml`]).
/// Blocking: CPU-bound, linear in the body.
fn parse_blocking(yaml: bool, body: &[u8], limits: &TemplateLimits) -> Result<Template, HttpError> {
    if yaml {
        let text = std::str::from_utf8(body)
            .map_err(|e| HttpError::bad_request(format!("template body is not UTF-8: {e}")))?;
        Template::from_yaml_str_with(text, "<request body>", limits).map_err(|e| invalid(&e))
    } else {
        scan_json(body, limits).map_err(|e| invalid(&e))?;
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {e}"),
            )
        })?;
        Template::from_json_value_with(value, limits).map_err(|e| invalid(&e))
    }
}

/// Parses a template body on a blocking thread, in one of the process's
/// slots, within the limits and time budget of [`parsing`]. No slot within
/// the budget: 503. Parsing past the budget: 422 (the parse goes on in its
/// slot until it ends, bounded by the limits; the request does not wait).
async fn parse_template(headers: &HeaderMap, body: Bytes) -> Result<Template, HttpError> {
    parse_with(&parsing(), headers, body).await
}

/// [`parse_template`] with `parsing`.
async fn parse_with(
    parsing: &TemplateParsing,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Template, HttpError> {
    let started = Instant::now();
    let slot =
        match tokio::time::timeout(parsing.budget, parsing.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(closed)) => return Err(HttpError::internal(&closed)),
            Err(_) => {
                return Err(HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "no template parsing slot became free within templates.parse_timeout_ms \
                     ({} ms): {} parses run at once (templates.max_concurrent_parses)",
                        parsing.budget.as_millis(),
                        parsing.max_concurrent
                    ),
                )
                .with_details(serde_json::json!({ "limit": "templates.max_concurrent_parses" })));
            }
        };
    let yaml = is_yaml(headers);
    let limits = parsing.limits.clone();
    let job = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        parse_blocking(yaml, &body, &limits)
    });
    let left = parsing.budget.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, job).await {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(join)) => Err(HttpError::internal(&join)),
        Err(_) => Err(HttpError::unprocessable(format!(
            "<request body>: template took longer to parse than allowed: over the limit \
             templates.parse_timeout_ms = {}",
            parsing.budget.as_millis()
        ))
        .with_details(serde_json::json!({ "limit": "templates.parse_timeout_ms" }))),
    }
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
        (status = 422, description = "The template is invalid or over a `[templates]` limit; the message names the problem (`details.limit` the limit)", body = ErrorBody),
        (status = 503, description = "No template parsing slot became free in time", body = ErrorBody),
    ),
    security(("bearer" = ["templates:write"])))]
pub async fn register_template(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, HttpError> {
    let template = parse_template(&headers, body).await?;
    scope::check(&who, &template.namespace)?;
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
        (status = 422, description = "The template is invalid or over a `[templates]` limit; the message names the problem (`details.limit` the limit)", body = ErrorBody),
        (status = 503, description = "No template parsing slot became free in time", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn validate_template(
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TemplateAccepted>, HttpError> {
    let template = parse_template(&headers, body).await?;
    scope::check(&who, &template.namespace)?;
    Ok(Json(TemplateAccepted {
        key: template.key(),
        created: false,
        levels: levels(&template),
        unserved: Vec::new(),
    }))
}

/// Every registered template version (of one namespace with `namespace`).
#[utoipa::path(get, path = "/v1/templates", tag = "templates",
    params(ListTemplatesParams),
    responses(
        (status = 200, description = "The templates", body = TemplateList),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_templates(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiQuery(params): ApiQuery<ListTemplatesParams>,
) -> Result<Json<TemplateList>, HttpError> {
    let shown = scope::list_filter(&who, params.namespace.as_deref())?;
    let mut templates = tstore::list(&state.pool).await?;
    templates.retain(|t| shown.as_ref().is_none_or(|ns| ns.contains(&t.namespace)));
    Ok(Json(TemplateList { templates }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/yaml"),
        );
        headers
    }

    /// A valid template of `n` independent steps.
    fn wide(n: usize) -> Bytes {
        let mut text = String::from("namespace: t\nname: wide\nversion: 1.0.0\nsteps:\n");
        for i in 0..n {
            text.push_str(&format!(
                "  - {{ name: s{i}, handler: {{ name: h, config: {{ i: {i} }} }} }}\n"
            ));
        }
        Bytes::from(text)
    }

    fn parsing(budget_ms: u64, slots: u32) -> TemplateParsing {
        TemplateParsing::from_config(&TemplatesConfig {
            parse_timeout_ms: budget_ms,
            max_concurrent_parses: slots,
            ..TemplatesConfig::default()
        })
    }

    #[tokio::test]
    async fn parses_within_budget_and_slots() {
        let t = parse_with(&parsing(5_000, 1), &yaml_headers(), wide(1_000))
            .await
            .expect("valid");
        assert_eq!(t.steps.len(), 1_000);
        let json = serde_json::to_vec(&t).expect("json");
        let t = parse_with(&parsing(5_000, 1), &HeaderMap::new(), Bytes::from(json))
            .await
            .expect("valid JSON");
        assert_eq!(t.steps.len(), 1_000);
    }

    #[tokio::test]
    async fn no_free_slot_within_the_budget_is_503_naming_the_limit() {
        let parsing = parsing(50, 1);
        let _held = parsing.slots.clone().acquire_owned().await.expect("slot");
        let started = Instant::now();
        let err = parse_with(&parsing, &yaml_headers(), wide(1))
            .await
            .expect_err("busy");
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            err.body.details,
            Some(serde_json::json!({"limit": "templates.max_concurrent_parses"}))
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_parse_past_the_budget_is_422_and_keeps_its_slot_until_done() {
        let parsing = parsing(1, 1);
        let err = parse_with(&parsing, &yaml_headers(), wide(1_000))
            .await
            .expect_err("slow");
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err.body.details,
            Some(serde_json::json!({"limit": "templates.parse_timeout_ms"}))
        );
        assert!(err.body.message.contains("templates.parse_timeout_ms = 1"));
        // The abandoned parse still holds the one slot, then gives it back.
        assert_eq!(parsing.slots.available_permits(), 0);
        let slot = tokio::time::timeout(
            Duration::from_secs(10),
            parsing.slots.clone().acquire_owned(),
        )
        .await
        .expect("the slot comes back");
        drop(slot);
    }

    #[test]
    fn configure_sets_the_limits_in_force() {
        let config = TemplatesConfig {
            max_depth: 9,
            ..TemplatesConfig::default()
        };
        configure(&config);
        assert_eq!(super::parsing().limits.max_depth, 9);
        configure(&TemplatesConfig::default());
        assert_eq!(super::parsing().limits, TemplateLimits::default());
    }
}
