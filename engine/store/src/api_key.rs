//! API key rows: inserting, listing, revoking and finding by prefix. Hashing,
//! permissions and the constant-time comparison live in `api::keys`; this
//! module only reads and writes `tasker.api_keys`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// A stored key, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct KeyRow {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub permissions: Vec<String>,
    /// The namespaces the key is limited to; `None`: every namespace.
    pub namespaces: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    /// After this instant the key is refused.
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The columns a verification needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSecret {
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub permissions: Vec<String>,
    pub namespaces: Option<Vec<String>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// True when `expires_at` has passed (by the database's clock).
    pub expired: bool,
}

/// A key to insert: everything but its secret's hash and prefix.
#[derive(Debug, Clone, Copy)]
pub struct NewKeyRow<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub secret_hash: &'a [u8],
    pub permissions: &'a [&'a str],
    pub namespaces: Option<&'a [String]>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Inserts a key; false when a key with this name already exists.
pub async fn insert(pool: &PgPool, key: NewKeyRow<'_>) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO tasker.api_keys (id, name, prefix, secret_hash, permissions, namespaces, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
    )
    .bind(key.id)
    .bind(key.name)
    .bind(key.prefix)
    .bind(key.secret_hash)
    .bind(key.permissions)
    .bind(key.namespaces)
    .bind(key.expires_at)
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() > 0)
}

/// True when a key that is neither revoked nor expired exists: the
/// bootstrap key is then retired.
pub async fn any_usable(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tasker.api_keys
                         WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))",
    )
    .fetch_one(pool)
    .await
}

/// Every key, oldest first, revoked ones included.
pub async fn list(pool: &PgPool) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, prefix, permissions, namespaces, created_at, expires_at, revoked_at
           FROM tasker.api_keys ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await
}

/// Revokes the key with this id (when `id_or_name` parses as a UUID) or name;
/// false when no such unrevoked key exists.
pub async fn revoke(pool: &PgPool, id_or_name: &str) -> Result<bool, sqlx::Error> {
    let id = Uuid::parse_str(id_or_name).ok();
    let n = sqlx::query(
        "UPDATE tasker.api_keys SET revoked_at = now()
          WHERE (id = $1 OR ($1::uuid IS NULL AND name = $2)) AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(id_or_name)
    .execute(pool)
    .await?;
    Ok(n.rows_affected() > 0)
}

/// The key with this prefix, revoked or not.
pub async fn find_by_prefix(
    pool: &PgPool,
    prefix: &str,
) -> Result<Option<StoredSecret>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, secret_hash, permissions, namespaces, revoked_at,
                coalesce(expires_at <= now(), false) AS expired
           FROM tasker.api_keys WHERE prefix = $1",
    )
    .bind(prefix)
    .fetch_optional(pool)
    .await
}
