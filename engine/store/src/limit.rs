//! Rate limits (`docs/flow-control.md`): named limits (`tasker.rate_limits`)
//! that template steps reference (`rate_limit: { name, key }`, recorded in
//! `tasker.template_step_limits` when the template is registered). Every
//! worker's claim (`sql/claim_steps.sql`) spends the tokens of the limit's
//! bucket (`tasker.rate_buckets`, one per key) and hides the messages it may
//! not start yet until the bucket admits them: a limited step waits, it never
//! fails, and no attempt is spent. A step whose limit is not defined runs
//! unlimited.
//!
//! This module defines, reads and deletes limits; the enforcement is the
//! claim's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::StoreError;
use tasker_model::template::{check_limit, validate_limit_name, Template};
pub use tasker_model::template::{format_rate, parse_rate, MAX_BURST};

/// A rate limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RateLimit {
    /// The name steps reference: `^[a-z][a-z0-9_]*$`, 1..=63 characters.
    pub name: String,
    /// Steps a second, on average (1/3600 to 1,000,000).
    pub per_second: f64,
    /// Steps that may start at once after a quiet spell (1..=1,000,000).
    pub burst: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn invalid(field: &str, reason: String) -> StoreError {
    StoreError::InvalidRequest {
        field: field.to_string(),
        reason,
    }
}

/// Checks a limit's name: the error names the field `name`.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    validate_limit_name(name).map_err(|e| invalid("name", e))
}

/// Defines `name` or changes its rate and burst (the buckets keep their
/// state: a slower rate applies from the next claim). Returns the limit and
/// whether it is new.
pub async fn set(
    pool: &PgPool,
    name: &str,
    per_second: f64,
    burst: u32,
) -> Result<(RateLimit, bool), StoreError> {
    check_name(name)?;
    check_limit(per_second, burst).map_err(|e| {
        let field = if e.starts_with("burst") {
            "burst"
        } else {
            "per_second"
        };
        invalid(field, e)
    })?;
    let burst = i32::try_from(burst).map_err(|_| invalid("burst", "is too large".into()))?;
    let (name, per_second, burst, created_at, updated_at, created): (
        String,
        f64,
        i32,
        DateTime<Utc>,
        DateTime<Utc>,
        bool,
    ) = sqlx::query_as(
        "INSERT INTO tasker.rate_limits AS l (name, per_second, burst) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE
            SET per_second = EXCLUDED.per_second, burst = EXCLUDED.burst, updated_at = now()
         RETURNING l.name, l.per_second, l.burst, l.created_at, l.updated_at, (l.xmax = 0) AS created",
    )
    .bind(name)
    .bind(per_second)
    .bind(burst)
    .fetch_one(pool)
    .await?;
    Ok((
        RateLimit {
            name,
            per_second,
            burst,
            created_at,
            updated_at,
        },
        created,
    ))
}

/// Every limit, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<RateLimit>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT name, per_second, burst, created_at, updated_at FROM tasker.rate_limits ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

/// The limit `name`, if defined.
pub async fn get(pool: &PgPool, name: &str) -> Result<Option<RateLimit>, StoreError> {
    check_name(name)?;
    Ok(sqlx::query_as(
        "SELECT name, per_second, burst, created_at, updated_at FROM tasker.rate_limits WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?)
}

/// Deletes the limit `name` and its buckets: the steps that reference it run
/// unlimited from the next claim. False when it was not defined.
pub async fn delete(pool: &PgPool, name: &str) -> Result<bool, StoreError> {
    check_name(name)?;
    let deleted: bool = sqlx::query_scalar(
        "WITH gone AS (DELETE FROM tasker.rate_limits WHERE name = $1 RETURNING name),
              buckets AS (DELETE FROM tasker.rate_buckets WHERE name = $1)
         SELECT EXISTS (SELECT 1 FROM gone)",
    )
    .bind(name)
    .fetch_one(pool)
    .await?;
    Ok(deleted)
}

/// Deletes the buckets that are full again (their theoretical arrival time
/// has passed): a missing bucket is a full one, so this changes no
/// decision. Keys come and go (one bucket per customer); this bounds the
/// table by the keys active in the last moments. Returns how many went.
pub async fn prune_idle_buckets(pool: &PgPool) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM tasker.rate_buckets WHERE tat < now()")
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Records which steps of the template registered as `template_id`
/// reference a limit, for the claim (in the registering transaction; a
/// template version is written once).
pub(crate) async fn record_template_steps(
    conn: &mut PgConnection,
    template_id: i64,
    template: &Template,
) -> Result<(), StoreError> {
    let mut steps = Vec::new();
    let mut limits = Vec::new();
    let mut paths: Vec<Option<String>> = Vec::new();
    for step in &template.steps {
        let Some(limit) = &step.rate_limit else {
            continue;
        };
        steps.push(step.name.clone());
        limits.push(limit.name.clone());
        // text[] per row, passed as its JSON text (arrays of arrays are not
        // a bind type).
        paths.push(match limit.key_path() {
            Some(p) => {
                Some(serde_json::to_string(&p).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            }
            None => None,
        });
    }
    if steps.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO tasker.template_step_limits (template_id, step_name, limit_name, key_path)
         SELECT $1, s.step, s.limit_name,
                CASE WHEN s.path IS NOT NULL
                     THEN ARRAY(SELECT jsonb_array_elements_text(s.path::jsonb)) END
           FROM unnest($2::text[], $3::text[], $4::text[]) AS s (step, limit_name, path)
         ON CONFLICT (template_id, step_name) DO NOTHING",
    )
    .bind(template_id)
    .bind(&steps)
    .bind(&limits)
    .bind(&paths)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
