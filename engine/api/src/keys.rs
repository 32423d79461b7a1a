//! API keys: `tk_<prefix>_<secret>`, stored as the prefix plus sha256(secret),
//! compared in constant time. The plaintext is returned once, by [`create_key`].
//! The rows are read and written by [`tasker_store::api_key`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use tasker_store::api_key;

/// What a key may do. `admin` implies every other permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Permission {
    #[serde(rename = "tasks:create")]
    TasksCreate,
    #[serde(rename = "tasks:read")]
    TasksRead,
    #[serde(rename = "tasks:cancel")]
    TasksCancel,
    #[serde(rename = "steps:resolve")]
    StepsResolve,
    #[serde(rename = "templates:write")]
    TemplatesWrite,
    /// Upload and delete WASM components. Read as well from its old name,
    /// `handlers:write`, which keys stored before the rename may hold.
    #[serde(rename = "components:write", alias = "handlers:write")]
    ComponentsWrite,
    #[serde(rename = "admin")]
    Admin,
}

impl Permission {
    pub const ALL: &'static [Permission] = &[
        Permission::TasksCreate,
        Permission::TasksRead,
        Permission::TasksCancel,
        Permission::StepsResolve,
        Permission::TemplatesWrite,
        Permission::ComponentsWrite,
        Permission::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::TasksCreate => "tasks:create",
            Permission::TasksRead => "tasks:read",
            Permission::TasksCancel => "tasks:cancel",
            Permission::StepsResolve => "steps:resolve",
            Permission::TemplatesWrite => "templates:write",
            Permission::ComponentsWrite => "components:write",
            Permission::Admin => "admin",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Old names still read as their permission (stored keys may hold them); a
/// permission is only ever written under its current name ([`Permission::as_str`]).
const OLD_NAMES: &[(&str, Permission)] = &[("handlers:write", Permission::ComponentsWrite)];

impl FromStr for Permission {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .or_else(|| OLD_NAMES.iter().find(|(old, _)| *old == s).map(|&(_, p)| p))
            .ok_or_else(|| KeyError::UnknownPermission(s.to_string()))
    }
}

/// What went wrong managing keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unknown permission '{0}' (known: tasks:create, tasks:read, tasks:cancel, steps:resolve, templates:write, components:write, admin)")]
    UnknownPermission(String),
    #[error("a key named '{0}' already exists")]
    NameTaken(String),
    #[error("key name must be 1..=100 characters")]
    BadName,
    #[error("bad namespace for a key: {0}")]
    BadNamespace(String),
    #[error("a key limited to namespaces cannot hold `admin`: admin acts on every namespace")]
    ScopedAdmin,
    #[error("the expiry {0} is not in the future")]
    ExpiryPassed(DateTime<Utc>),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// A stored key, without its secret.
pub type KeyInfo = api_key::KeyRow;

/// Who made a request, and what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The key's name (`bootstrap` for the configured bootstrap key, `anonymous`
    /// when auth is disabled).
    pub name: String,
    pub permissions: Vec<Permission>,
    /// The namespaces the key is limited to; `None`: every namespace.
    pub namespaces: Option<Vec<String>>,
}

impl Principal {
    /// A principal with every permission in every namespace.
    pub fn unrestricted(name: &str) -> Principal {
        Principal {
            name: name.to_string(),
            permissions: vec![Permission::Admin],
            namespaces: None,
        }
    }

    /// True when the principal holds `p` or `admin`.
    pub fn allows(&self, p: Permission) -> bool {
        self.permissions
            .iter()
            .any(|&have| have == p || have == Permission::Admin)
    }

    /// True when the principal may act in `namespace`.
    pub fn reaches(&self, namespace: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|scope| scope.iter().any(|n| n == namespace))
    }

    /// True when the key is limited to some namespaces.
    pub fn is_scoped(&self) -> bool {
        self.namespaces.is_some()
    }
}

/// A key to create: its name, permissions and optional limits.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    pub name: String,
    pub permissions: Vec<Permission>,
    /// Limit the key to these namespaces (`None`: every namespace).
    pub namespaces: Option<Vec<String>>,
    /// Refuse the key after this instant.
    pub expires_at: Option<DateTime<Utc>>,
}

impl KeySpec {
    /// A key for every namespace that never expires.
    pub fn new(name: &str, permissions: &[Permission]) -> KeySpec {
        KeySpec {
            name: name.to_string(),
            permissions: permissions.to_vec(),
            ..KeySpec::default()
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Creates a key; returns its id and the plaintext `tk_<prefix>_<secret>`, shown once.
pub async fn create_key(pool: &PgPool, spec: &KeySpec) -> Result<(Uuid, String), KeyError> {
    let name = spec.name.as_str();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(KeyError::BadName);
    }
    if let Some(scope) = &spec.namespaces {
        if scope.is_empty() {
            return Err(KeyError::BadNamespace("the list is empty".into()));
        }
        for ns in scope {
            tasker_model::template::validate_identifier(
                tasker_model::template::IdentKind::Namespace,
                ns,
            )
            .map_err(|e| KeyError::BadNamespace(e.to_string()))?;
        }
        if spec.permissions.contains(&Permission::Admin) {
            return Err(KeyError::ScopedAdmin);
        }
    }
    if let Some(at) = spec.expires_at {
        if at <= Utc::now() {
            return Err(KeyError::ExpiryPassed(at));
        }
    }
    let prefix = hex::encode(rand::random::<[u8; 6]>());
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let id = Uuid::now_v7();
    let perms: Vec<&str> = spec.permissions.iter().map(|p| p.as_str()).collect();
    let hash = sha256(secret.as_bytes());
    let row = api_key::NewKeyRow {
        id,
        name,
        prefix: &prefix,
        secret_hash: &hash,
        permissions: &perms,
        namespaces: spec.namespaces.as_deref(),
        expires_at: spec.expires_at,
    };
    if !api_key::insert(pool, row).await? {
        return Err(KeyError::NameTaken(name.to_string()));
    }
    Ok((id, format!("tk_{prefix}_{secret}")))
}

/// Every key, oldest first, revoked ones included. Permissions are listed
/// under their current names (a key stored with `handlers:write` lists
/// `components:write`); names this version does not know are listed as stored.
pub async fn list_keys(pool: &PgPool) -> Result<Vec<KeyInfo>, KeyError> {
    let mut keys = api_key::list(pool).await?;
    for key in &mut keys {
        for p in &mut key.permissions {
            if let Ok(known) = p.parse::<Permission>() {
                *p = known.as_str().to_string();
            }
        }
    }
    Ok(keys)
}

/// Revokes the key with this id or name; false when no such unrevoked key exists.
pub async fn revoke_key(pool: &PgPool, id_or_name: &str) -> Result<bool, KeyError> {
    Ok(api_key::revoke(pool, id_or_name).await?)
}

/// Checks a presented key against the store (and the bootstrap key, if any).
/// `None` means the key is not valid (unknown, malformed, wrong, revoked or
/// expired; or the bootstrap key once a usable key is stored).
pub async fn verify(
    pool: &PgPool,
    presented: &str,
    bootstrap: Option<&str>,
) -> Result<Option<Principal>, sqlx::Error> {
    if let Some(boot) = bootstrap {
        // Hash both sides so that the comparison does not depend on lengths.
        let equal: bool = sha256(presented.as_bytes())
            .ct_eq(&sha256(boot.as_bytes()))
            .into();
        if equal {
            // Valid only until the first key exists (config/README.md).
            if api_key::any_usable(pool).await? {
                tracing::warn!("the bootstrap key was presented, but keys exist: refused");
                return Ok(None);
            }
            return Ok(Some(Principal::unrestricted("bootstrap")));
        }
    }
    let Some((prefix, secret)) = presented
        .strip_prefix("tk_")
        .and_then(|rest| rest.split_once('_'))
    else {
        return Ok(None);
    };
    if prefix.is_empty() || prefix.len() > 64 {
        return Ok(None);
    }
    let Some(row) = api_key::find_by_prefix(pool, prefix).await? else {
        return Ok(None);
    };
    let matches: bool = sha256(secret.as_bytes())
        .as_slice()
        .ct_eq(&row.secret_hash)
        .into();
    if !matches || row.revoked_at.is_some() || row.expired {
        return Ok(None);
    }
    Ok(Some(Principal {
        name: row.name,
        namespaces: row.namespaces,
        // Unknown names (written by a newer version) grant nothing.
        permissions: row
            .permissions
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_round_trip_and_admin_implies_all() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), *p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert!("tasks:write".parse::<Permission>().is_err());
        let admin = Principal::unrestricted("a");
        assert!(Permission::ALL.iter().all(|p| admin.allows(*p)));
        let reader = Principal {
            name: "r".into(),
            permissions: vec![Permission::TasksRead],
            namespaces: None,
        };
        assert!(reader.allows(Permission::TasksRead));
        assert!(!reader.allows(Permission::TasksCreate));
    }

    #[test]
    fn the_old_name_of_components_write_still_reads() {
        assert_eq!(
            "handlers:write".parse::<Permission>().unwrap(),
            Permission::ComponentsWrite
        );
        assert_eq!(
            serde_json::from_value::<Permission>(serde_json::json!("handlers:write")).unwrap(),
            Permission::ComponentsWrite
        );
        // Written only under the new name.
        assert_eq!(Permission::ComponentsWrite.as_str(), "components:write");
        assert_eq!(
            serde_json::to_value(Permission::ComponentsWrite).unwrap(),
            "components:write"
        );
    }

    /// A key stored before the rename, holding `handlers:write`, may still
    /// upload components, and is listed with the new name.
    #[sqlx::test(migrations = false)]
    async fn stored_keys_with_the_old_permission_name_keep_it(pool: PgPool) {
        tasker_store::migrate::migrate(&pool).await.unwrap();
        let secret = "s".repeat(64);
        let hash = sha256(secret.as_bytes());
        let row = api_key::NewKeyRow {
            id: Uuid::now_v7(),
            name: "old",
            prefix: "0123456789ab",
            secret_hash: &hash,
            permissions: &["handlers:write", "tasks:read", "from:the-future"],
            namespaces: None,
            expires_at: None,
        };
        api_key::insert(&pool, row).await.unwrap();
        let p = verify(&pool, &format!("tk_0123456789ab_{secret}"), None)
            .await
            .unwrap()
            .expect("valid");
        assert_eq!(
            p.permissions,
            vec![Permission::ComponentsWrite, Permission::TasksRead]
        );
        assert!(p.allows(Permission::ComponentsWrite));
        let listed = list_keys(&pool).await.unwrap();
        assert_eq!(
            listed[0].permissions,
            ["components:write", "tasks:read", "from:the-future"]
        );
    }

    #[sqlx::test(migrations = false)]
    async fn create_verify_revoke(pool: PgPool) {
        tasker_store::migrate::migrate(&pool).await.unwrap();
        // Before any key exists the bootstrap key is admin.
        let boot = verify(&pool, "boot-secret", Some("boot-secret"))
            .await
            .unwrap()
            .expect("bootstrap");
        assert!(boot.allows(Permission::Admin));
        let (id, key) = create_key(&pool, &KeySpec::new("ci", &[Permission::TasksRead]))
            .await
            .unwrap();
        assert!(key.starts_with("tk_"));
        let p = verify(&pool, &key, None).await.unwrap().expect("valid");
        assert_eq!(p.name, "ci");
        assert_eq!(p.permissions, vec![Permission::TasksRead]);
        assert!(!p.is_scoped());
        // Retired once a key exists.
        assert!(verify(&pool, "boot-secret", Some("boot-secret"))
            .await
            .unwrap()
            .is_none());
        let mut wrong = key.clone();
        wrong.pop();
        wrong.push('x');
        assert!(verify(&pool, &wrong, None).await.unwrap().is_none());
        assert!(verify(&pool, "garbage", None).await.unwrap().is_none());
        assert!(matches!(
            create_key(&pool, &KeySpec::new("ci", &[])).await,
            Err(KeyError::NameTaken(_))
        ));
        let listed = list_keys(&pool).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        assert!(revoke_key(&pool, "ci").await.unwrap());
        assert!(!revoke_key(&pool, &id.to_string()).await.unwrap());
        assert!(verify(&pool, &key, None).await.unwrap().is_none());
        // With every key revoked, the bootstrap key works again (recovery).
        assert!(verify(&pool, "boot-secret", Some("boot-secret"))
            .await
            .unwrap()
            .is_some());
    }

    #[sqlx::test(migrations = false)]
    async fn keys_limited_to_namespaces_and_expiring(pool: PgPool) {
        tasker_store::migrate::migrate(&pool).await.unwrap();
        let spec = KeySpec {
            namespaces: Some(vec!["billing".into()]),
            expires_at: Some(Utc::now() + chrono::TimeDelta::hours(1)),
            ..KeySpec::new("billing-bot", &[Permission::TasksCreate])
        };
        let (_, key) = create_key(&pool, &spec).await.unwrap();
        let p = verify(&pool, &key, None).await.unwrap().expect("valid");
        assert!(p.reaches("billing") && !p.reaches("payroll"));
        let listed = list_keys(&pool).await.unwrap();
        assert_eq!(
            listed[0].namespaces.as_deref(),
            Some(&["billing".to_string()][..])
        );
        assert!(listed[0].expires_at.is_some());
        // Refused: admin with a limit, a bad namespace, an expiry in the past.
        let admin = KeySpec {
            namespaces: Some(vec!["billing".into()]),
            ..KeySpec::new("a", &[Permission::Admin])
        };
        assert!(matches!(
            create_key(&pool, &admin).await,
            Err(KeyError::ScopedAdmin)
        ));
        let bad = KeySpec {
            namespaces: Some(vec!["Bad Name".into()]),
            ..KeySpec::new("b", &[Permission::TasksRead])
        };
        assert!(matches!(
            create_key(&pool, &bad).await,
            Err(KeyError::BadNamespace(_))
        ));
        let past = KeySpec {
            expires_at: Some(Utc::now() - chrono::TimeDelta::seconds(1)),
            ..KeySpec::new("c", &[Permission::TasksRead])
        };
        assert!(matches!(
            create_key(&pool, &past).await,
            Err(KeyError::ExpiryPassed(_))
        ));
        // Once expired, refused like a revoked key.
        sqlx::query("UPDATE tasker.api_keys SET expires_at = now() - interval '1 second'")
            .execute(&pool)
            .await
            .unwrap();
        assert!(verify(&pool, &key, None).await.unwrap().is_none());
    }
}
