//! Uploaded WASM components (the code of WASM step handlers): upload, list,
//! read metadata, delete.
//!
//! An upload is validated by `tasker-wasm-host` before it is stored: a
//! component (not a core module), importing only the contract's `log` and the
//! WASI 0.2 interfaces a language runtime needs (linked, granting nothing),
//! exporting `tasker:handler/handler@0.1.0`, and compiling. Anything else is a
//! 422 naming the reason.

use std::sync::Arc;
pub use tasker_api_types::{ComponentAccepted, ComponentList};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use tasker_wasm_host::{HostConfig, WasmHost};
use utoipa::ToSchema;

use super::error::{ErrorBody, HttpError};
use super::extract::ApiPath;
use super::ApiState;
use tasker_model::template::{validate_identifier, IdentKind};
use tasker_store::component::{self as cstore, ComponentMeta, Stored};

/// The path of the upload route (its body limit is `wasm.max_component_bytes`).
pub const UPLOAD_PATH: &str = "/v1/components/{name}/{version}";

/// The WASM side of the API's state: settings, and the validating host,
/// made on first upload.
#[derive(Clone)]
pub struct ComponentUploads {
    pub enabled: bool,
    /// Largest accepted component, in bytes.
    pub max_component_bytes: usize,
    pub host_config: HostConfig,
    host: Arc<tokio::sync::OnceCell<Arc<WasmHost>>>,
}

impl ComponentUploads {
    pub fn new(enabled: bool, max_component_bytes: usize, host_config: HostConfig) -> Self {
        ComponentUploads {
            enabled,
            max_component_bytes,
            host_config,
            host: Arc::default(),
        }
    }

    async fn host(&self) -> Result<Arc<WasmHost>, HttpError> {
        let config = self.host_config.clone();
        self.host
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || WasmHost::new(config).map(Arc::new))
                    .await
                    .map_err(|e| HttpError::internal(&e))?
                    .map_err(|e| HttpError::internal(&e))
            })
            .await
            .cloned()
    }
}

/// The bytes of a WASM component (`application/wasm` or `application/octet-stream`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ComponentBytes(pub Vec<u8>);

fn check_name(name: &str) -> Result<(), HttpError> {
    validate_identifier(IdentKind::HandlerName, name).map_err(|e| {
        HttpError::unprocessable(e.to_string()).with_details(serde_json::json!({ "field": "name" }))
    })
}

fn check_version(version: &str) -> Result<(), HttpError> {
    if cstore::parse_version(version).is_none() {
        return Err(HttpError::unprocessable(format!(
            "bad version `{version}`: expected MAJOR.MINOR.PATCH"
        ))
        .with_details(serde_json::json!({ "field": "version" })));
    }
    Ok(())
}

/// Uploads a WASM component as `name` at `version`. Versions are
/// immutable: the same bytes again are a 200, other bytes a 409.
#[utoipa::path(put, path = "/v1/components/{name}/{version}", tag = "components",
    params(
        ("name" = String, Path, description = "Component name, as a template's step `handler.name` names it"),
        ("version" = String, Path, description = "MAJOR.MINOR.PATCH"),
    ),
    request_body(description = "A WebAssembly component implementing tasker:handler@0.1.0 (any content type is accepted; `application/wasm` is usual)",
        content((ComponentBytes = "application/octet-stream"))),
    responses(
        (status = 201, description = "Stored", body = ComponentAccepted),
        (status = 200, description = "The identical component was already stored", body = ComponentAccepted),
        (status = 400, description = "Malformed path parameter", body = ErrorBody),
        (status = 409, description = "This version is stored with different bytes", body = ErrorBody),
        (status = 413, description = "Larger than wasm.max_component_bytes", body = ErrorBody),
        (status = 422, description = "Bad name or version, or not an acceptable component; the message names the reason", body = ErrorBody),
        (status = 503, description = "WASM components are disabled (wasm.enabled = false)", body = ErrorBody),
    ),
    security(("bearer" = ["components:write"])))]
pub async fn upload_component(
    State(state): State<ApiState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, HttpError> {
    check_name(&name)?;
    check_version(&version)?;
    let wasm = &state.components;
    if !wasm.enabled {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "WASM components are disabled (wasm.enabled = false)",
        ));
    }
    if body.len() > wasm.max_component_bytes {
        return Err(HttpError::from_status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let host = wasm.host().await?;
    let bytes = body.clone();
    let info = tokio::task::spawn_blocking(move || host.validate(&bytes))
        .await
        .map_err(|e| HttpError::internal(&e))?
        .map_err(|e| {
            HttpError::unprocessable(format!("rejected: {e}"))
                .with_details(serde_json::json!({ "reason": reason_code(&e) }))
        })?;
    let stored = cstore::put(
        &state.pool,
        &name,
        &version,
        &info.sha256,
        &info.contract_version,
        &body,
    )
    .await?;
    let (status, created, component) = match stored {
        Stored::Created(m) => (StatusCode::CREATED, true, m),
        Stored::Unchanged(m) => (StatusCode::OK, false, m),
        Stored::Conflict(m) => {
            return Err(HttpError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "component {name}@{version} is already stored with other bytes (sha256 {}); versions are immutable: upload a new version, or delete this one first",
                    m.sha256
                ),
            ))
        }
    };
    tracing::info!(%name, %version, sha256 = %component.sha256, size = component.size_bytes, created, "WASM component uploaded");
    Ok((
        status,
        Json(ComponentAccepted {
            created,
            component,
            imports: info.imports,
        }),
    ))
}

fn reason_code(e: &tasker_wasm_host::LoadError) -> &'static str {
    use tasker_wasm_host::LoadError as L;
    match e {
        L::NotAComponent => "not_a_component",
        L::Compile(_) => "does_not_compile",
        L::ForbiddenImport { .. } => "forbidden_import",
        L::Export(_) => "missing_export",
        L::Link(_) => "link_failed",
        L::Host(_) => "host",
    }
}

/// Every uploaded component (metadata only), by name, highest version first.
#[utoipa::path(get, path = "/v1/components", tag = "components",
    responses(
        (status = 200, description = "The components", body = ComponentList),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn list_components(
    State(state): State<ApiState>,
) -> Result<Json<ComponentList>, HttpError> {
    Ok(Json(ComponentList {
        components: cstore::list(&state.pool).await?,
    }))
}

/// One component's metadata; `latest` is the highest version.
#[utoipa::path(get, path = "/v1/components/{name}/{version}", tag = "components",
    params(
        ("name" = String, Path, description = "Component name"),
        ("version" = String, Path, description = "MAJOR.MINOR.PATCH or `latest`"),
    ),
    responses(
        (status = 200, description = "The component's metadata", body = ComponentMeta),
        (status = 400, description = "Malformed path parameter", body = ErrorBody),
        (status = 404, description = "No such component", body = ErrorBody),
        (status = 422, description = "Bad name or version", body = ErrorBody),
    ),
    security(("bearer" = ["tasks:read"])))]
pub async fn get_component(
    State(state): State<ApiState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Json<ComponentMeta>, HttpError> {
    check_name(&name)?;
    let version = if version == "latest" {
        match cstore::resolve(&state.pool, &name, None).await? {
            Some((_, v, _)) => v,
            None => {
                return Err(HttpError::not_found(format!(
                    "no component {name} is uploaded"
                )))
            }
        }
    } else {
        check_version(&version)?;
        version
    };
    cstore::get(&state.pool, &name, &version)
        .await?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("component {name}@{version} is not uploaded")))
}

/// Deletes one component. Steps that name it fail with `no_handler` from then on
/// (or run the highest remaining version when their template names none).
#[utoipa::path(delete, path = "/v1/components/{name}/{version}", tag = "components",
    params(
        ("name" = String, Path, description = "Component name"),
        ("version" = String, Path, description = "MAJOR.MINOR.PATCH"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed path parameter", body = ErrorBody),
        (status = 404, description = "No such component", body = ErrorBody),
        (status = 422, description = "Bad name or version", body = ErrorBody),
    ),
    security(("bearer" = ["components:write"])))]
pub async fn delete_component(
    State(state): State<ApiState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<StatusCode, HttpError> {
    check_name(&name)?;
    check_version(&version)?;
    if let Some(sha256) = cstore::delete(&state.pool, &name, &version).await? {
        tracing::info!(%name, %version, "WASM component deleted");
        // Unless other uploads share the bytes, forget the compiled form
        // here; workers forget it at their next sweep (`wasm::install`).
        if let Some(host) = state.components.host.get() {
            let still_uploaded = cstore::uploaded_hashes(&state.pool).await?;
            if !still_uploaded.contains(&sha256) {
                host.evict(&sha256);
            }
        }
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(HttpError::not_found(format!(
            "component {name}@{version} is not uploaded"
        )))
    }
}
