//! Uploaded WASM handler components: rows of `tasker.handler_components`.
//! Validation (is it a component, what it imports, does it compile) is the
//! caller's (`wasm-host` through the API); this module only reads and writes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// A stored component, without its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentMeta {
    /// Handler name, as templates name it.
    pub name: String,
    /// `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// Hex sha256 of the component's bytes.
    pub sha256: String,
    pub size_bytes: i64,
    /// The `tasker:handler` contract version the component implements.
    pub contract_version: String,
    pub uploaded_at: DateTime<Utc>,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// A new (name, version).
    Created(ComponentMeta),
    /// The same bytes were already stored under this (name, version).
    Unchanged(ComponentMeta),
    /// Other bytes are stored under this (name, version): refused.
    Conflict(ComponentMeta),
}

/// `MAJOR.MINOR.PATCH` as numbers (each fits `i64`), or `None`.
pub fn parse_version(version: &str) -> Option<(i64, i64, i64)> {
    let v = semver::Version::parse(version).ok()?;
    if !v.pre.is_empty() || !v.build.is_empty() {
        return None;
    }
    Some((
        i64::try_from(v.major).ok()?,
        i64::try_from(v.minor).ok()?,
        i64::try_from(v.patch).ok()?,
    ))
}

const META: &str = "name, version, sha256, size_bytes, contract_version, uploaded_at";

/// Stores a validated component unless (name, version) exists; says which.
pub async fn put(
    pool: &PgPool,
    name: &str,
    version: &str,
    sha256: &str,
    contract_version: &str,
    bytes: &[u8],
) -> Result<Stored, sqlx::Error> {
    let (major, minor, patch) = parse_version(version).unwrap_or_default();
    let inserted: Option<ComponentMeta> = sqlx::query_as(&format!(
        "INSERT INTO tasker.handler_components
             (name, version, version_major, version_minor, version_patch, sha256, size_bytes,
              contract_version, bytes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (name, version) DO NOTHING
         RETURNING {META}"
    ))
    .bind(name)
    .bind(version)
    .bind(major)
    .bind(minor)
    .bind(patch)
    .bind(sha256)
    .bind(bytes.len() as i64)
    .bind(contract_version)
    .bind(bytes)
    .fetch_optional(pool)
    .await?;
    if let Some(meta) = inserted {
        return Ok(Stored::Created(meta));
    }
    match get(pool, name, version).await? {
        Some(existing) if existing.sha256 == sha256 => Ok(Stored::Unchanged(existing)),
        Some(existing) => Ok(Stored::Conflict(existing)),
        // Deleted between the two statements: try once more.
        None => Box::pin(put(pool, name, version, sha256, contract_version, bytes)).await,
    }
}

/// One component's metadata.
pub async fn get(
    pool: &PgPool,
    name: &str,
    version: &str,
) -> Result<Option<ComponentMeta>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {META} FROM tasker.handler_components WHERE name = $1 AND version = $2"
    ))
    .bind(name)
    .bind(version)
    .fetch_optional(pool)
    .await
}

/// Every component, by name then highest version first.
pub async fn list(pool: &PgPool) -> Result<Vec<ComponentMeta>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {META} FROM tasker.handler_components
          ORDER BY name, version_major DESC, version_minor DESC, version_patch DESC"
    ))
    .fetch_all(pool)
    .await
}

/// Deletes one component; returns its sha256, `None` when there was none.
pub async fn delete(
    pool: &PgPool,
    name: &str,
    version: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "DELETE FROM tasker.handler_components WHERE name = $1 AND version = $2 RETURNING sha256",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(pool)
    .await
}

/// The sha256 of every uploaded component (caches keep only these).
pub async fn uploaded_hashes(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT sha256 FROM tasker.handler_components")
        .fetch_all(pool)
        .await
}

/// The component a step runs: its handler name and the template's
/// `handler.version`, or the highest version when the template names none.
/// `None`: no such component (or no such step).
pub async fn for_step(
    pool: &PgPool,
    step_id: Uuid,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.name, c.version, c.sha256
           FROM tasker.steps s
           JOIN tasker.handler_components c
             ON c.name = s.handler_name
            AND (s.handler_version IS NULL OR c.version = s.handler_version)
          WHERE s.id = $1
          ORDER BY c.version_major DESC, c.version_minor DESC, c.version_patch DESC
          LIMIT 1",
    )
    .bind(step_id)
    .fetch_optional(pool)
    .await
}

/// The `handler.version` a step's template names, if any.
pub async fn pinned_version(pool: &PgPool, step_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    let v: Option<Option<String>> =
        sqlx::query_scalar("SELECT handler_version FROM tasker.steps WHERE id = $1")
            .bind(step_id)
            .fetch_optional(pool)
            .await?;
    Ok(v.flatten())
}

/// The component for a handler name and optional version, as [`for_step`]
/// picks it (for callers without a step row, e.g. the benchmark).
pub async fn resolve(
    pool: &PgPool,
    name: &str,
    version: Option<&str>,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, version, sha256 FROM tasker.handler_components
          WHERE name = $1 AND ($2::text IS NULL OR version = $2)
          ORDER BY version_major DESC, version_minor DESC, version_patch DESC
          LIMIT 1",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(pool)
    .await
}

/// A component's bytes, if its (name, version) still holds `sha256`.
pub async fn bytes(
    pool: &PgPool,
    name: &str,
    version: &str,
    sha256: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT bytes FROM tasker.handler_components
          WHERE name = $1 AND version = $2 AND sha256 = $3",
    )
    .bind(name)
    .bind(version)
    .bind(sha256)
    .fetch_optional(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_are_plain_semver() {
        assert_eq!(parse_version("1.2.3"), Some((1, 2, 3)));
        assert_eq!(parse_version("1.2"), None);
        assert_eq!(parse_version("1.2.3-beta"), None);
        assert_eq!(parse_version("01.2.3"), None);
        assert_eq!(parse_version("99999999999999999999.0.0"), None);
    }
}
