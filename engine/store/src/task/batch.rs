//! Creating many tasks at once: one statement and one durable commit for the
//! whole batch, where [`super::create`] takes one of each per task: a batch
//! creates several times more tasks per second (`docs/performance.md`).

use sqlx::{Connection, PgPool};

use super::create::{create_many_on, Planned};
use super::{Created, NewTask, Start};
use crate::template::TemplateCache;
use crate::StoreError;
use tasker_model::change::Changed;

/// Most tasks one batch may hold.
pub const MAX_BATCH: usize = 1_000;

/// Most steps one batch may create, all its tasks together: one statement
/// inserts them all, and its arrays are held in memory on both sides.
pub const MAX_BATCH_STEPS: usize = 50_000;

/// Creates every task of `batch` (each with its delayed start), in one
/// statement and transaction: all are created, or none when one is refused. A task
/// refused (its template not registered, its input rejected by the
/// template's schema, an invalid start or idempotency key) is named by its
/// position: [`StoreError::InBatch`]. A task whose idempotency key exists
/// already, or appears earlier in the same batch, is returned as that task
/// (`created: false`), as [`super::create`] does. Returns one [`Created`] per
/// task, in the batch's order, and what changed (the roots' queues).
pub async fn create_batch(
    pool: &PgPool,
    templates: &TemplateCache,
    batch: &[(NewTask, Start)],
    processor_id: &str,
) -> Result<(Vec<Created>, Changed), StoreError> {
    if batch.is_empty() || batch.len() > MAX_BATCH {
        return Err(StoreError::InvalidRequest {
            field: "tasks".into(),
            reason: format!("must hold 1..={MAX_BATCH} tasks, got {}", batch.len()),
        });
    }
    let in_batch = |index: usize| {
        move |source: StoreError| StoreError::InBatch {
            index,
            source: Box::new(source),
        }
    };
    // Everything that can be refused without writing, first; the templates
    // are read before a connection is held (as `create_at` does: reading one
    // may take a connection of its own).
    let now = chrono::Utc::now();
    let mut loaded = Vec::with_capacity(batch.len());
    for (i, (req, start)) in batch.iter().enumerate() {
        let run_at = start.resolve(now).map_err(in_batch(i))?;
        let template = templates
            .get(pool, &req.namespace, &req.name, req.version.as_deref())
            .await
            .map_err(in_batch(i))?;
        loaded.push((template, run_at));
    }
    let steps: usize = loaded.iter().map(|(l, _)| l.template.steps.len()).sum();
    if steps > MAX_BATCH_STEPS {
        return Err(StoreError::InvalidRequest {
            field: "tasks".into(),
            reason: format!(
                "would create {steps} steps in all; a batch creates at most {MAX_BATCH_STEPS}: \
                 send fewer tasks a request"
            ),
        });
    }
    let planned: Vec<Planned<'_>> = batch
        .iter()
        .zip(&loaded)
        .map(|((req, _), (loaded, run_at))| Planned {
            loaded,
            req,
            run_at: *run_at,
            schedule_id: None,
        })
        .collect();
    // A transaction: the tasks held under concurrency limits are admitted
    // after the statement, and commit with it.
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let (created, changed) = create_many_on(&mut tx, &planned, processor_id)
        .await
        .map_err(|(i, e)| match i {
            Some(i) => in_batch(i)(e),
            None => e,
        })?;
    tx.commit().await?;
    Ok((created, changed))
}
