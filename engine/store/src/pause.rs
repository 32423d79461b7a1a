//! Pauses: while a row of `tasker.pauses` names a task, a template (every
//! version) or a namespace, no step of a task it covers is claimed; steps
//! already running finish. Resuming continues where the tasks stopped.
//!
//! A paused task's step messages are *parked*: visible at `'infinity'`, so
//! claims never read them and a backlog costs them nothing. [`pause`] parks
//! the messages visible now; `tasker.send_step_messages` parks the ones sent
//! while the pause lasts; the claim parks any it still meets (one sent as the
//! pause committed, a lease that ran out, a delayed start coming due). Each
//! message keeps its `rank`, so [`resume`] puts the work back where it was in
//! the claim order. [`repair`] (the orchestrator's stale sweep) releases
//! messages parked by a claim that raced a resume, and forgets pauses of
//! tasks that are gone or finished (an `error` task keeps its pause: a retry
//! can revive it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::queue;
use crate::StoreError;
use tasker_model::change::Changed;
use tasker_model::template::{validate_identifier, IdentKind};

/// Longest pause reason.
pub const MAX_REASON: usize = 1000;

/// What a pause covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PauseScope {
    /// Every task of a namespace.
    Namespace,
    /// Every task of a template, any version; the target is `namespace/name`.
    Template,
    /// One task; the target is its id.
    Task,
}

impl PauseScope {
    /// The name stored in `tasker.pauses.scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseScope::Namespace => "namespace",
            PauseScope::Template => "template",
            PauseScope::Task => "task",
        }
    }
}

/// A pause in force.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pause {
    /// `namespace`, `template` or `task`.
    pub scope: String,
    /// The namespace, `namespace/name`, or the task id.
    pub target: String,
    pub reason: Option<String>,
    /// The API key (or CLI user) that paused it.
    pub paused_by: Option<String>,
    pub paused_at: DateTime<Utc>,
}

/// What [`pause`] or [`resume`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PauseChange {
    /// False when the pause already existed ([`pause`]) or did not
    /// ([`resume`]): nothing changed.
    pub changed: bool,
    /// Step messages parked ([`pause`]) or made visible again ([`resume`]).
    pub messages: u64,
}

/// Checks that `target` names something `scope` can pause, returning the
/// stored form: a registered namespace, a registered template
/// (`namespace/name`), or an existing task's id.
async fn checked_target(
    conn: &mut PgConnection,
    scope: PauseScope,
    target: &str,
) -> Result<String, StoreError> {
    match scope {
        PauseScope::Namespace => {
            validate_identifier(IdentKind::Namespace, target)?;
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM tasker.templates WHERE namespace = $1)",
            )
            .bind(target)
            .fetch_one(&mut *conn)
            .await?;
            known
                .then(|| target.to_string())
                .ok_or_else(|| StoreError::NamespaceNotFound(target.to_string()))
        }
        PauseScope::Template => {
            let (namespace, name) =
                target
                    .split_once('/')
                    .ok_or_else(|| StoreError::InvalidRequest {
                        field: "template".into(),
                        reason: "must be namespace/name".into(),
                    })?;
            validate_identifier(IdentKind::Namespace, namespace)?;
            validate_identifier(IdentKind::TemplateName, name)?;
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM tasker.templates WHERE namespace = $1 AND name = $2)",
            )
            .bind(namespace)
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
            known
                .then(|| target.to_string())
                .ok_or_else(|| StoreError::TemplateNotFound {
                    key: target.to_string(),
                })
        }
        PauseScope::Task => {
            let id: Uuid = target.parse().map_err(|_| StoreError::InvalidRequest {
                field: "task".into(),
                reason: "must be a task id (a UUID)".into(),
            })?;
            let known: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tasker.tasks WHERE id = $1)")
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
            known
                .then(|| id.to_string())
                .ok_or(StoreError::TaskNotFound(id))
        }
    }
}

/// The step queues (`steps_<pool>`) PGMQ knows.
async fn step_queues(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT queue_name FROM pgmq.meta WHERE queue_name LIKE 'steps\\_%' ORDER BY queue_name",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// The task id a step message names, as SQL over the message `m`.
const MESSAGE_TASK: &str = "CASE WHEN m.message->>'task_id' ~ '^[0-9a-f-]{36}$' \
                            THEN (m.message->>'task_id')::uuid END";

/// Pauses `target` (see [`PauseScope`]) and parks the step messages of the
/// tasks it covers that are visible now. Messages leased by a worker are
/// left alone (their steps finish), as are delayed starts not yet due (the
/// claim parks them when they come due).
pub async fn pause(
    pool: &PgPool,
    scope: PauseScope,
    target: &str,
    reason: Option<&str>,
    paused_by: &str,
) -> Result<PauseChange, StoreError> {
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON) {
        return Err(StoreError::InvalidRequest {
            field: "reason".into(),
            reason: format!("must be at most {MAX_REASON} characters"),
        });
    }
    let mut tx = pool.begin().await?;
    let target = checked_target(&mut tx, scope, target).await?;
    let inserted = sqlx::query(
        "INSERT INTO tasker.pauses (scope, target, reason, paused_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (scope, target) DO NOTHING",
    )
    .bind(scope.as_str())
    .bind(&target)
    .bind(reason)
    .bind(paused_by)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let mut parked = 0;
    for q in step_queues(&mut tx).await? {
        let sql = queue::substitute(
            &format!(
                "UPDATE {{steps}} m SET vt = 'infinity'
                  WHERE m.vt <= clock_timestamp() AND tasker.task_paused({MESSAGE_TASK})"
            ),
            &q,
        )?;
        parked += sqlx::query(&sql).execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    tracing::info!(scope = scope.as_str(), %target, parked, "paused");
    Ok(PauseChange {
        changed: inserted == 1,
        messages: parked,
    })
}

/// Lifts the pause of `target` and makes the parked messages of the tasks
/// no other pause covers visible again, in their old rank. Returns what
/// changed and the queues to wake.
pub async fn resume(
    pool: &PgPool,
    scope: PauseScope,
    target: &str,
) -> Result<(PauseChange, Changed), StoreError> {
    let mut tx = pool.begin().await?;
    let target = checked_target(&mut tx, scope, target).await?;
    let deleted = sqlx::query("DELETE FROM tasker.pauses WHERE scope = $1 AND target = $2")
        .bind(scope.as_str())
        .bind(&target)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let (released, queues) = release_parked(&mut tx).await?;
    tx.commit().await?;
    tracing::info!(scope = scope.as_str(), %target, released, "resumed");
    let change = PauseChange {
        changed: deleted == 1,
        messages: released,
    };
    Ok((change, changed_queues(queues)))
}

/// Makes visible every parked message no pause covers; returns how many and
/// the queues they are in.
async fn release_parked(conn: &mut PgConnection) -> Result<(u64, Vec<String>), StoreError> {
    let mut released = 0;
    let mut queues = Vec::new();
    for q in step_queues(&mut *conn).await? {
        let sql = queue::substitute(
            &format!(
                "UPDATE {{steps}} m SET vt = clock_timestamp()
                  WHERE m.vt = 'infinity' AND NOT tasker.task_paused({MESSAGE_TASK})"
            ),
            &q,
        )?;
        let n = sqlx::query(&sql).execute(&mut *conn).await?.rows_affected();
        if n > 0 {
            released += n;
            queues.push(q);
        }
    }
    Ok((released, queues))
}

fn changed_queues(queues: Vec<String>) -> Changed {
    queues
        .into_iter()
        .fold(Changed::none(), Changed::with_queue)
}

/// The orchestrator's repair of pauses (its stale sweep): forgets the pauses
/// of tasks that are finished or gone, and releases messages a claim parked
/// while a resume committed. Returns the queues to wake.
pub async fn repair(pool: &PgPool) -> Result<Changed, StoreError> {
    let mut tx = pool.begin().await?;
    // The task by its primary key (`t.id::text = p.target` would compare
    // every task's id as text: a scan of tasker.tasks each sweep). Task
    // targets are UUIDs (`checked_target`); the CASE keeps a malformed row
    // from failing the cast.
    sqlx::query(
        "DELETE FROM tasker.pauses p
          WHERE p.scope = 'task'
            AND NOT EXISTS (SELECT 1 FROM tasker.tasks t
                             WHERE t.id = CASE WHEN p.target ~ '^[0-9a-f-]{36}$'
                                               THEN p.target::uuid END
                               AND t.state NOT IN ('complete', 'cancelled', 'resolved_manually'))",
    )
    .execute(&mut *tx)
    .await?;
    let (released, queues) = release_parked(&mut tx).await?;
    tx.commit().await?;
    if released > 0 {
        tracing::info!(released, "released parked step messages no pause covers");
    }
    Ok(changed_queues(queues))
}

/// Every pause in force, oldest first; only those in `namespaces` when given
/// (a template's or task's namespace).
pub async fn list(pool: &PgPool, namespaces: Option<&[String]>) -> Result<Vec<Pause>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT p.scope, p.target, p.reason, p.paused_by, p.paused_at
           FROM tasker.pauses p
          WHERE $1::text[] IS NULL
             OR CASE p.scope
                  WHEN 'namespace' THEN p.target = ANY ($1)
                  WHEN 'template' THEN split_part(p.target, '/', 1) = ANY ($1)
                  ELSE EXISTS (SELECT 1 FROM tasker.tasks t
                                WHERE t.id = CASE WHEN p.target ~ '^[0-9a-f-]{36}$'
                                                  THEN p.target::uuid END
                                  AND t.namespace = ANY ($1))
                END
          ORDER BY p.paused_at, p.scope, p.target",
    )
    .bind(namespaces)
    .fetch_all(pool)
    .await?)
}

/// Pauses in force per scope, every scope listed (the `tasker_pauses` gauge).
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT s.scope, count(p.scope)
           FROM unnest(ARRAY['namespace', 'template', 'task']) AS s(scope)
           LEFT JOIN tasker.pauses p ON p.scope = s.scope
          GROUP BY s.scope ORDER BY s.scope",
    )
    .fetch_all(pool)
    .await?)
}

/// Whether a pause covers the task `task_id`.
pub async fn task_paused(pool: &PgPool, task_id: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT tasker.task_paused($1)")
        .bind(task_id)
        .fetch_one(pool)
        .await?)
}
