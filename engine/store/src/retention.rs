//! Retention: deleting finished tasks older than their namespace's age
//! (`[retention]`, `docs/retention.md`).
//!
//! A finished task is one in a terminal state (`complete`, `error`,
//! `cancelled`, `resolved_manually`); its age runs from `completed_at`.
//! Deleting a task row takes everything of it:
//!
//! * its steps and edges, by `ON DELETE CASCADE`;
//! * its task transitions, and its steps' transitions, results and handler
//!   logs (`step_logs`), by the
//!   statement triggers of `migrations/functions/delete_{task,step}_history.sql`;
//! * its dead-letter rows (`step_dlq`, no foreign key), its schedule fire rows
//!   (`schedule_fires.task_id`) and its task pauses (`pauses`), here, in the
//!   same transaction;
//! * its idempotency key, which lives on the task row: the same key creates a
//!   new task afterwards.
//!
//! A finished task has no live queue message; the PGMQ archive tables (dead
//! letters of queues) are not touched.
//!
//! [`sweep_batch`] deletes one batch in one short transaction: it picks the
//! oldest candidates per namespace (index `tasks_finished`), locks them
//! `FOR UPDATE SKIP LOCKED` — a task some other transaction holds is skipped,
//! never waited for, and two sweepers never take the same task — and deletes
//! them. [`run`] repeats it; [`plan`] counts what would go.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;
use tasker_config::RetentionConfig;
use tasker_model::state::TaskState;

/// How long finished tasks are kept, per namespace. An age of 0 keeps them
/// forever.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Seconds after `completed_at` a finished task of a namespace not in
    /// `namespaces` is removed; 0: never.
    pub default_age_seconds: u64,
    /// Per-namespace ages, in seconds, overriding the default; 0: never.
    pub namespaces: BTreeMap<String, u64>,
}

impl RetentionPolicy {
    /// The policy of `[retention]`.
    pub fn from_config(config: &RetentionConfig) -> RetentionPolicy {
        RetentionPolicy {
            default_age_seconds: config.finished_task_age_seconds,
            namespaces: config.namespaces.clone(),
        }
    }

    /// The age in effect for `namespace`, in seconds (0: kept forever).
    pub fn age_of(&self, namespace: &str) -> u64 {
        self.namespaces
            .get(namespace)
            .copied()
            .unwrap_or(self.default_age_seconds)
    }

    /// The policy as query parameters: override names, their ages, the default.
    fn binds(&self) -> (Vec<String>, Vec<i64>, i64) {
        let names = self.namespaces.keys().cloned().collect();
        let ages = self.namespaces.values().map(|&a| seconds(a)).collect();
        (names, ages, seconds(self.default_age_seconds))
    }
}

/// Seconds as a bigint; an age beyond `i64::MAX` seconds is forever anyway.
fn seconds(age: u64) -> i64 {
    i64::try_from(age).unwrap_or(i64::MAX)
}

/// What a sweep would remove from one namespace ([`plan`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(
        as = RetentionNamespace,
        description = "Finished tasks of one namespace old enough to be removed."
    )
)]
pub struct NamespaceCount {
    pub namespace: String,
    /// The age in effect, in seconds after completion; 0: kept forever.
    pub age_seconds: i64,
    /// Finished tasks past that age.
    pub tasks: i64,
    /// The earliest `completed_at` among them.
    pub oldest_completed_at: Option<DateTime<Utc>>,
    /// The latest `completed_at` among them.
    pub newest_completed_at: Option<DateTime<Utc>>,
}

/// The policy of every registered namespace: `$1` override names, `$2` their
/// ages, `$3` the default age (seconds).
const POLICY: &str = "overrides (namespace, age_seconds) AS (
        SELECT * FROM unnest($1::text[], $2::bigint[])
    ), policy AS (
        SELECT n.name AS namespace, coalesce(o.age_seconds, $3) AS age_seconds
          FROM tasker.namespaces n LEFT JOIN overrides o ON o.namespace = n.name
    )";

/// A dry run: for every registered namespace, its age and the finished tasks
/// that are past it at `now` (count, oldest and newest `completed_at`), by
/// namespace name. Changes nothing.
pub async fn plan(
    pool: &PgPool,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<NamespaceCount>, StoreError> {
    let (names, ages, default_age) = policy.binds();
    let sql = format!(
        "WITH {POLICY}
         SELECT p.namespace, p.age_seconds, count(t.id) AS tasks,
                min(t.completed_at) AS oldest_completed_at,
                max(t.completed_at) AS newest_completed_at
           FROM policy p
           LEFT JOIN tasker.tasks t
             ON t.namespace = p.namespace
            AND p.age_seconds > 0
            AND t.state IN ({finished})
            AND t.completed_at < $4 - p.age_seconds * interval '1 second'
          GROUP BY p.namespace, p.age_seconds
          ORDER BY p.namespace",
        finished = TaskState::terminal_sql_list(),
    );
    Ok(sqlx::query_as(&sql)
        .bind(names)
        .bind(ages)
        .bind(default_age)
        .bind(now)
        .fetch_all(pool)
        .await?)
}

/// Deletes at most `batch` finished tasks past their namespace's age, oldest
/// `completed_at` first, with everything of theirs (see the module doc), in
/// one transaction. Tasks another transaction has locked are skipped. Returns
/// how many were deleted: fewer than `batch` when nothing more is old enough
/// or the rest was locked.
pub async fn sweep_batch(
    pool: &PgPool,
    policy: &RetentionPolicy,
    batch: u32,
) -> Result<usize, StoreError> {
    if batch == 0 {
        return Err(StoreError::InvalidRequest {
            field: "batch_size".into(),
            reason: "must be at least 1".into(),
        });
    }
    let (names, ages, default_age) = policy.binds();
    let finished = TaskState::terminal_sql_list();
    // Each namespace's oldest candidates come from its own range of
    // tasks_finished; the oldest `batch` of them all are looked up by id and
    // locked. The lock re-checks state and age on the row as it is now (a
    // task resolved by hand meanwhile finished just now, and stays).
    let pick = format!(
        "WITH {POLICY}, cutoffs AS (
             SELECT namespace, now() - age_seconds * interval '1 second' AS cutoff
               FROM policy WHERE age_seconds > 0
         ), oldest AS (
             SELECT old.id
               FROM cutoffs c
              CROSS JOIN LATERAL (
                    SELECT t.id, t.completed_at FROM tasker.tasks t
                     WHERE t.namespace = c.namespace
                       AND t.state IN ({finished})
                       AND t.completed_at < c.cutoff
                     ORDER BY t.completed_at
                     LIMIT $4) old
              ORDER BY old.completed_at
              LIMIT $4
         )
         SELECT t.id FROM tasker.tasks t
          WHERE t.id = ANY (ARRAY(SELECT id FROM oldest))
            AND t.state IN ({finished})
            AND t.completed_at < (SELECT c.cutoff FROM cutoffs c WHERE c.namespace = t.namespace)
            FOR UPDATE SKIP LOCKED"
    );
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(&pick)
        .bind(names)
        .bind(ages)
        .bind(default_age)
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?;
    if ids.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    // What refers to a task without a foreign key goes first; then the task,
    // whose deletion cascades to steps and edges and fires the history triggers.
    sqlx::query("DELETE FROM tasker.step_dlq WHERE task_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM tasker.schedule_fires WHERE task_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    let targets: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    sqlx::query("DELETE FROM tasker.pauses WHERE scope = 'task' AND target = ANY($1)")
        .bind(&targets)
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM tasker.tasks WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
}

/// Progress of [`run`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swept {
    /// Tasks deleted so far.
    pub tasks: u64,
    /// Batches (transactions) that deleted something.
    pub batches: u32,
    /// Tasks deleted by the latest batch.
    pub last_batch: u64,
    /// Whether the sweep ran out of work: the latest batch was not full
    /// (nothing more was old enough, or the rest was locked by others).
    pub done: bool,
}

/// Deletes batches ([`sweep_batch`]) until one comes back short of `batch`,
/// calling `on_batch` after each batch that deleted something; it may
/// `Break` to stop early (the remainder is left for the next sweep).
pub async fn run<F>(
    pool: &PgPool,
    policy: &RetentionPolicy,
    batch: u32,
    mut on_batch: F,
) -> Result<Swept, StoreError>
where
    F: FnMut(&Swept) -> ControlFlow<()>,
{
    let mut swept = Swept::default();
    loop {
        let n = sweep_batch(pool, policy, batch).await?;
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        swept.last_batch = n;
        swept.done = n < u64::from(batch);
        if n == 0 {
            return Ok(swept);
        }
        swept.tasks += n;
        swept.batches += 1;
        if on_batch(&swept).is_break() || swept.done {
            return Ok(swept);
        }
    }
}
