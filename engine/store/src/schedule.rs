//! Schedules: a template fired on a cron expression in an IANA time zone.
//!
//! A schedule row holds its `next_fire_at`. Every orchestrator calls
//! [`fire_due`] about once a second: in one transaction it locks the due
//! schedules (`FOR UPDATE SKIP LOCKED`), inserts a `tasker.schedule_fires`
//! row per tick (primary key `(schedule_id, fire_at)`: a tick fires once,
//! however many orchestrators run, with no leader), creates each tick's task
//! (`tasks.schedule_id` records the schedule) and moves `next_fire_at` on.
//! After downtime a `skip` schedule fires only its latest missed tick, a
//! `catch_up` one each missed tick, the latest [`MAX_CATCH_UP`] at most.

mod fire;
mod spec;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub use fire::{fire_due, Fired};
pub use spec::{CatchUp, Spec, MAX_CATCH_UP};

use crate::template::TemplateCache;
use crate::StoreError;

/// Longest schedule name.
pub const MAX_NAME: usize = 128;

/// A schedule name: 1..=[`MAX_NAME`] of `a-z`, `0-9`, `_`, `-`, starting
/// with a letter.
fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name",
            format!("must be 1..={MAX_NAME} of a-z, 0-9, `_`, `-`, starting with a letter"),
        ))
    }
}

/// A request to create a schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewSchedule {
    /// Unique in its namespace: a-z, 0-9, `_`, `-`, starting with a letter.
    pub name: String,
    pub namespace: String,
    pub template_name: String,
    /// `None`: the highest version registered when each tick fires.
    pub template_version: Option<String>,
    /// 5 fields (minutes) or 6 (seconds first).
    pub cron: String,
    /// IANA name, e.g. `Europe/Paris`.
    pub timezone: String,
    /// Each fired task's input.
    pub context: Value,
    pub catch_up: CatchUp,
}

/// A schedule row.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = Schedule, description = "A schedule: a template fired on a cron expression.")
)]
pub struct ScheduleRow {
    pub id: Uuid,
    pub name: String,
    pub namespace: String,
    pub template_name: String,
    pub template_version: Option<String>,
    pub cron: String,
    pub timezone: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Value,
    /// `skip` or `catch_up`.
    pub catch_up: String,
    pub paused: bool,
    pub next_fire_at: DateTime<Utc>,
    pub last_fired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, namespace, template_name, template_version, cron, timezone, \
                       context, catch_up, paused, next_fire_at, last_fired_at, created_at";

fn invalid(field: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidRequest {
        field: field.into(),
        reason: reason.to_string(),
    }
}

/// Creates a schedule after checking its name, cron expression, time zone,
/// template (registered) and context (the template's input schema); each
/// refusal is [`StoreError::InvalidRequest`] naming the field. A name taken
/// in the namespace is [`StoreError::ScheduleConflict`].
pub async fn create(
    pool: &PgPool,
    templates: &TemplateCache,
    req: &NewSchedule,
) -> Result<ScheduleRow, StoreError> {
    check_name(&req.name)?;
    let spec = Spec::parse(&req.cron, &req.timezone)?;
    let loaded = templates
        .get(
            pool,
            &req.namespace,
            &req.template_name,
            req.template_version.as_deref(),
        )
        .await
        .map_err(|e| match e {
            StoreError::TemplateNotFound { key } => {
                invalid("template", format!("{key} is not registered"))
            }
            StoreError::NamespaceNotFound(ns) => {
                invalid("template", format!("namespace '{ns}' has no template"))
            }
            other => other,
        })?;
    loaded
        .input
        .validate(&req.context)
        .map_err(|e| invalid("context", e))?;
    let now = Utc::now();
    let next = spec
        .next_after(now)
        .ok_or_else(|| invalid("cron", "never fires after now"))?;
    let row: Option<ScheduleRow> = sqlx::query_as(&format!(
        "INSERT INTO tasker.schedules (id, name, namespace, template_name, template_version, cron,
                                       timezone, context, catch_up, next_fire_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (namespace, name) DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(&req.name)
    .bind(&req.namespace)
    .bind(&req.template_name)
    .bind(&req.template_version)
    .bind(&req.cron)
    .bind(&req.timezone)
    .bind(&req.context)
    .bind(req.catch_up.as_str())
    .bind(next)
    .fetch_optional(pool)
    .await?;
    row.ok_or_else(|| StoreError::ScheduleConflict {
        namespace: req.namespace.clone(),
        name: req.name.clone(),
    })
}

/// Up to `limit` schedules by id (creation order) after `cursor`, of
/// `namespaces` when given.
pub async fn list(
    pool: &PgPool,
    namespaces: Option<&[String]>,
    cursor: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ScheduleRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasker.schedules
          WHERE ($1::text[] IS NULL OR namespace = ANY($1))
            AND ($2::uuid IS NULL OR id > $2)
          ORDER BY id LIMIT $3"
    ))
    .bind(namespaces)
    .bind(cursor)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// One schedule; [`StoreError::ScheduleNotFound`] when there is none.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<ScheduleRow, StoreError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasker.schedules WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::ScheduleNotFound(id))
}

/// The namespace of a schedule, `None` when there is no such schedule.
pub async fn namespace_of(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT namespace FROM tasker.schedules WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Pauses a schedule (no tick fires while paused); idempotent.
pub async fn pause(pool: &PgPool, id: Uuid) -> Result<ScheduleRow, StoreError> {
    sqlx::query_as(&format!(
        "UPDATE tasker.schedules SET paused = true WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::ScheduleNotFound(id))
}

/// Resumes a paused schedule from its next tick after now: the ticks of the
/// pause are not fired, whatever its catch-up policy. A running schedule is
/// left as it is.
pub async fn resume(pool: &PgPool, id: Uuid) -> Result<ScheduleRow, StoreError> {
    let row = get(pool, id).await?;
    if !row.paused {
        return Ok(row);
    }
    let next = Spec::parse(&row.cron, &row.timezone)?
        .next_after(Utc::now())
        .ok_or_else(|| StoreError::Corrupt(format!("schedule {id} never fires again")))?;
    let resumed: Option<ScheduleRow> = sqlx::query_as(&format!(
        "UPDATE tasker.schedules SET paused = false, next_fire_at = $2
          WHERE id = $1 AND paused RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(next)
    .fetch_optional(pool)
    .await?;
    match resumed {
        Some(r) => Ok(r),
        // A concurrent resume won: the row as it is now.
        None => get(pool, id).await,
    }
}

/// Deletes a schedule and its fire records (its tasks stay, keeping their
/// `schedule_id`); [`StoreError::ScheduleNotFound`] when there is none.
pub async fn delete(pool: &PgPool, id: Uuid) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query("DELETE FROM tasker.schedules WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::ScheduleNotFound(id));
    }
    sqlx::query("DELETE FROM tasker.schedule_fires WHERE schedule_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
