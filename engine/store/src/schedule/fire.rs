//! Firing due schedules: one transaction per call, any number of callers.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::spec::{CatchUp, Spec};
use crate::task::{self, NewTask};
use crate::template::TemplateCache;
use crate::StoreError;
use tasker_model::change::Changed;

/// The tasks one [`fire_due`] call created.
#[derive(Debug, Default)]
pub struct Fired {
    /// `(namespace, schedule id, tick, task id)` of each fired tick.
    pub tasks: Vec<(String, Uuid, DateTime<Utc>, Uuid)>,
    /// What the new tasks changed: announce it after the call.
    pub changed: Changed,
}

#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    namespace: String,
    template_name: String,
    template_version: Option<String>,
    cron: String,
    timezone: String,
    context: Value,
    catch_up: String,
    next_fire_at: DateTime<Utc>,
}

/// Fires the due ticks of up to `limit` due schedules, as the module docs of
/// `schedule` say, in one transaction: the schedules other callers hold
/// are skipped (they are firing them), each tick's fire row and task commit
/// together, and a tick whose fire row exists already fires nothing. A
/// tick whose task cannot be created (its template's input schema now
/// refuses the context, say) is recorded with no task and logged; the
/// schedule goes on.
pub async fn fire_due(
    pool: &PgPool,
    templates: &TemplateCache,
    processor_id: &str,
    limit: i64,
) -> Result<Fired, StoreError> {
    let mut tx = pool.begin().await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *tx)
        .await?;
    let due: Vec<Due> = sqlx::query_as(
        "SELECT id, namespace, template_name, template_version, cron, timezone, context,
                catch_up, next_fire_at
           FROM tasker.schedules
          WHERE NOT paused AND next_fire_at <= $1
          ORDER BY next_fire_at
          LIMIT $2
            FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut fired = Fired::default();
    for s in due {
        let spec = match Spec::parse(&s.cron, &s.timezone) {
            Ok(spec) => spec,
            Err(e) => {
                // Checked at creation; a row edited by hand is paused, not retried.
                tracing::warn!(schedule_id = %s.id, error = %e, "pausing a schedule that cannot be parsed");
                sqlx::query("UPDATE tasker.schedules SET paused = true WHERE id = $1")
                    .bind(s.id)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
        };
        let policy = CatchUp::parse(&s.catch_up).unwrap_or_default();
        let (ticks, next) = spec.due(s.next_fire_at, now, policy);
        let req = NewTask {
            namespace: s.namespace.clone(),
            name: s.template_name.clone(),
            version: s.template_version.clone(),
            context: s.context.clone(),
            priority: 0,
            idempotency_key: None,
            traceparent: None,
        };
        let mut last = None;
        for tick in ticks {
            let inserted: Option<i32> = sqlx::query_scalar(
                "INSERT INTO tasker.schedule_fires (schedule_id, fire_at) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING RETURNING 1",
            )
            .bind(s.id)
            .bind(tick)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                continue;
            }
            last = Some(tick);
            // A savepoint: a task that cannot be created leaves the fire row.
            let mut sp = sqlx::Connection::begin(&mut *tx).await?;
            let created = match templates
                .get(pool, &req.namespace, &req.name, req.version.as_deref())
                .await
            {
                Ok(loaded) => {
                    task::create_on(&mut sp, &loaded, &req, None, Some(s.id), processor_id).await
                }
                Err(e) => Err(e),
            };
            match created {
                Ok((created, changed)) => {
                    sqlx::query(
                        "UPDATE tasker.schedule_fires SET task_id = $3
                          WHERE schedule_id = $1 AND fire_at = $2",
                    )
                    .bind(s.id)
                    .bind(tick)
                    .bind(created.task_id)
                    .execute(&mut *sp)
                    .await?;
                    sp.commit().await?;
                    fired.changed.merge(changed);
                    fired
                        .tasks
                        .push((s.namespace.clone(), s.id, tick, created.task_id));
                }
                Err(StoreError::Sql(e)) => return Err(StoreError::Sql(e)),
                Err(e) => {
                    sp.rollback().await?;
                    tracing::warn!(schedule_id = %s.id, %tick, error = %e,
                        "a schedule's tick created no task");
                }
            }
        }
        // No next tick (a cron that ends): paused, with nothing left to fire.
        sqlx::query(
            "UPDATE tasker.schedules
                SET next_fire_at = coalesce($2, next_fire_at), paused = paused OR $2 IS NULL,
                    last_fired_at = coalesce($3, last_fired_at)
              WHERE id = $1",
        )
        .bind(s.id)
        .bind(next)
        .bind(last)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(fired)
}
