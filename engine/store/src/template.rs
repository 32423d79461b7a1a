//! Registered templates: writing a version once, finding it again, and a
//! process-wide cache (a template version is immutable, so caching is safe).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use sqlx::PgPool;

use super::StoreError;
use crate::queue;
use tasker_model::template::Template;

/// A template as registered: its row id and its definition.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: i64,
    pub template: Template,
    /// False when the same definition was already registered.
    pub created: bool,
}

/// Registers `template` (and its namespace, and the pools its steps run in with
/// their queues) in one transaction. Re-registering an identical definition is a no-op; a different
/// definition under the same version is [`StoreError::TemplateConflict`].
pub async fn register(pool: &PgPool, template: &Template) -> Result<Registered, StoreError> {
    template.validate()?;
    let definition =
        serde_json::to_value(template).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let queue_name = queue::step_queue(&template.namespace)?;
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO tasker.namespaces (name, queue_name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(&template.namespace)
        .bind(&queue_name)
        .execute(&mut *tx)
        .await?;
    let mut pools = template.pools();
    if !pools.contains(&template.namespace.as_str()) {
        pools.push(&template.namespace);
    }
    for pool_name in pools {
        let pool_queue = queue::step_queue(pool_name)?;
        sqlx::query(
            "INSERT INTO tasker.pools (name, queue_name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(pool_name)
        .bind(&pool_queue)
        .execute(&mut *tx)
        .await?;
        queue::ensure(&mut tx, &pool_queue).await?;
    }
    let version = template.version.to_string();
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO tasker.templates (namespace, name, version, definition) VALUES ($1, $2, $3, $4)
         ON CONFLICT (namespace, name, version) DO NOTHING RETURNING id",
    )
    .bind(&template.namespace)
    .bind(&template.name)
    .bind(&version)
    .bind(&definition)
    .fetch_optional(&mut *tx)
    .await?;
    let (id, created) = match inserted {
        Some(id) => (id, true),
        None => {
            let (id, existing): (i64, Value) = sqlx::query_as(
                "SELECT id, definition FROM tasker.templates WHERE namespace = $1 AND name = $2 AND version = $3",
            )
            .bind(&template.namespace)
            .bind(&template.name)
            .bind(&version)
            .fetch_one(&mut *tx)
            .await?;
            if existing != definition {
                return Err(StoreError::TemplateConflict {
                    key: template.key(),
                });
            }
            (id, false)
        }
    };
    if created {
        crate::limit::record_template_steps(&mut tx, id, template).await?;
    }
    tx.commit().await?;
    Ok(Registered {
        id,
        template: template.clone(),
        created,
    })
}

/// Summary row of a registered template.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = TemplateSummary, description = "A registered template version.")
)]
pub struct TemplateRow {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Every registered template version, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<TemplateRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, namespace, name, version, created_at FROM tasker.templates ORDER BY namespace, name, created_at DESC",
    )
    .fetch_all(pool)
    .await?)
}

/// Every pool a registered template uses (each namespace's own included),
/// with its step queue name and whether it is a namespace, by name.
pub async fn pools(pool: &PgPool) -> Result<Vec<(String, String, bool)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT p.name, p.queue_name,
                EXISTS (SELECT 1 FROM tasker.namespaces n WHERE n.name = p.name)
           FROM tasker.pools p ORDER BY p.name",
    )
    .fetch_all(pool)
    .await?)
}

/// A template found in the store, with its input schema compiled.
#[derive(Debug)]
pub struct Loaded {
    pub id: i64,
    pub template: Template,
    /// Checks task inputs against the template's `input_schema`.
    pub input: tasker_model::template::InputValidator,
}

/// Finds `namespace/name/version`; `version: None` means the highest version.
pub async fn find(
    pool: &PgPool,
    namespace: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Loaded, StoreError> {
    let key = format!("{namespace}/{name}/{}", version.unwrap_or("latest"));
    let rows: Vec<(i64, String, Value)> = sqlx::query_as(
        "SELECT id, version, definition FROM tasker.templates
          WHERE namespace = $1 AND name = $2 AND ($3::text IS NULL OR version = $3)",
    )
    .bind(namespace)
    .bind(name)
    .bind(version)
    .fetch_all(pool)
    .await?;
    let best = rows
        .into_iter()
        .filter_map(|(id, v, def)| semver::Version::parse(&v).ok().map(|sv| (sv, id, def)))
        .max_by(|a, b| a.0.cmp(&b.0));
    let Some((_, id, definition)) = best else {
        return Err(StoreError::TemplateNotFound { key });
    };
    let template = Template::from_json_value(definition)
        .map_err(|e| StoreError::Corrupt(format!("stored template {key}: {e}")))?;
    let input = template
        .input_validator()
        .map_err(|e| StoreError::Corrupt(format!("stored template {key}: {e}")))?;
    Ok(Loaded {
        id,
        template,
        input,
    })
}

/// The highest registered version of `namespace/name`, if any.
async fn latest_version(
    pool: &PgPool,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let versions: Vec<String> = sqlx::query_scalar(
        "SELECT version FROM tasker.templates WHERE namespace = $1 AND name = $2",
    )
    .bind(namespace)
    .bind(name)
    .fetch_all(pool)
    .await?;
    Ok(versions
        .into_iter()
        .filter_map(|v| semver::Version::parse(&v).ok().map(|sv| (sv, v)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| v))
}

/// Process-wide cache of templates by `namespace/name/version` and by id.
#[derive(Debug, Default, Clone)]
pub struct TemplateCache {
    by_key: Arc<RwLock<HashMap<String, Arc<Loaded>>>>,
}

impl TemplateCache {
    /// Finds a template, from the cache when seen before. `version: None`
    /// (latest) always asks the database which version is the highest, since a
    /// newer one may appear, then uses the cache for that version.
    pub async fn get(
        &self,
        pool: &PgPool,
        namespace: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<Loaded>, StoreError> {
        let latest;
        let version = match version {
            Some(v) => Some(v),
            None => {
                latest = latest_version(pool, namespace, name).await?;
                latest.as_deref()
            }
        };
        if let Some(v) = version {
            let key = format!("{namespace}/{name}/{v}");
            if let Some(hit) = self.by_key.read().ok().and_then(|m| m.get(&key).cloned()) {
                return Ok(hit);
            }
        }
        let loaded = Arc::new(find(pool, namespace, name, version).await?);
        if let Ok(mut m) = self.by_key.write() {
            m.insert(loaded.template.key(), loaded.clone());
        }
        Ok(loaded)
    }
}
