//! Concurrency limits by key (`docs/flow-control.md`, "Concurrency limits"):
//! the groups a new task's rows carry, its admission right after creation
//! (with the template's strategy), the release of a finished task's slots,
//! and the orchestrators' sweep. The decisions themselves are SQL:
//! `tasker.admit_held` (steps) and `tasker.admit_tasks` (tasks), each under
//! its group's advisory lock.

use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::operator::{cancel_locked, Actor};
use super::StoreError;
use tasker_model::change::Changed;
use tasker_model::template::{Strategy, Template};

/// Longest key value kept as it is in a group's name; a longer one is
/// replaced by its SHA-256 (hex).
pub const MAX_KEY_VALUE: usize = 200;

/// The concurrency groups of a new task, computed from its template and input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups {
    /// Per step (template order): its group under a step limit, else `None`.
    pub steps: Vec<Option<String>>,
    /// Per step: the step limit, else `None`.
    pub step_limits: Vec<Option<i32>>,
    /// The task's group under the template's limit, its limit and strategy.
    pub task: Option<(String, i32, Strategy)>,
}

/// A key value as it goes into a group name: as it is up to
/// [`MAX_KEY_VALUE`] bytes, else `sha256:<hex>`.
fn key_part(value: String) -> String {
    if value.len() <= MAX_KEY_VALUE {
        return value;
    }
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The groups of a task of `template` with input `context`: a step limit's
/// group is `<namespace>/<template>/<step>:<key value>`, the template's
/// `<namespace>/<template>:<key value>` (a missing key is the empty value).
pub fn groups(template: &Template, context: &serde_json::Value) -> Groups {
    let base = format!("{}/{}", template.namespace, template.name);
    let mut out = Groups::default();
    for step in &template.steps {
        match &step.concurrency {
            Some(c) => {
                let key = key_part(c.key_value(context));
                out.steps.push(Some(format!("{base}/{}:{key}", step.name)));
                out.step_limits.push(i32::try_from(c.limit).ok());
            }
            None => {
                out.steps.push(None);
                out.step_limits.push(None);
            }
        }
    }
    out.task = template.concurrency.as_ref().map(|c| {
        let key = key_part(c.key_value(context));
        (
            format!("{base}:{key}"),
            i32::try_from(c.limit).unwrap_or(i32::MAX),
            c.strategy,
        )
    });
    out
}

/// The reason recorded on a task `cancel_newest` cancels.
pub fn full_reason(group: &str) -> String {
    format!("concurrency limit of {group} reached")
}

/// Admits a task just created (its roots under a limit were created held):
/// under the template's limit according to its strategy, then the held roots
/// under step limits. Returns what changed (queues the admissions sent to; the
/// task's own change when `cancel_newest` cancelled it). A task left waiting
/// is admitted when a slot frees, or by the sweep if this never ran.
pub(crate) async fn admit_created(
    conn: &mut PgConnection,
    task_id: Uuid,
    groups: &Groups,
    processor_id: &str,
) -> Result<Changed, StoreError> {
    let mut changed = Changed::none();
    let mut queues: Vec<String> = Vec::new();
    if let Some((group, limit, strategy)) = &groups.task {
        if *strategy == Strategy::CancelInProgress {
            changed.merge(make_room(conn, task_id, group, *limit, processor_id).await?);
        }
        queues.extend(admit_tasks(conn, std::slice::from_ref(group), processor_id).await?);
        if *strategy == Strategy::CancelNewest {
            let admitted: bool =
                sqlx::query_scalar("SELECT concurrency_admitted FROM tasker.tasks WHERE id = $1")
                    .bind(task_id)
                    .fetch_one(&mut *conn)
                    .await?;
            if !admitted {
                let reason = full_reason(group);
                let actor = Actor {
                    processor_id,
                    reason: Some(&reason),
                };
                let mut tx = conn.begin().await?;
                changed.merge(cancel_locked(&mut tx, task_id, actor).await?);
                tx.commit().await?;
                tracing::debug!(%task_id, group, "task cancelled: its concurrency group is full");
            }
        }
    } else {
        let mut held: Vec<String> = groups.steps.iter().flatten().cloned().collect();
        held.sort_unstable();
        held.dedup();
        if !held.is_empty() {
            queues.extend(admit_held(conn, &held, processor_id).await?);
        }
    }
    for q in queues {
        changed = changed.with_queue(q);
    }
    Ok(changed)
}

/// `cancel_in_progress`: cancels the oldest unfinished admitted tasks of
/// `group` so that one slot is free for `task_id`. Not under the group's
/// lock (a cancel takes task row locks, which must not wait while the lock
/// is held): a concurrent admission may take the freed slot, and then the
/// new task waits; the limit holds either way.
async fn make_room(
    conn: &mut PgConnection,
    task_id: Uuid,
    group: &str,
    limit: i32,
    processor_id: &str,
) -> Result<Changed, StoreError> {
    let running: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tasker.tasks
          WHERE concurrency_group = $1 AND concurrency_admitted AND id <> $2
            AND state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
          ORDER BY id",
    )
    .bind(group)
    .bind(task_id)
    .fetch_all(&mut *conn)
    .await?;
    let excess = (running.len() + 1).saturating_sub(usize::try_from(limit).unwrap_or(1));
    let reason = format!("superseded by task {task_id} (concurrency limit of {group})");
    let mut changed = Changed::none();
    for victim in running.into_iter().take(excess) {
        let actor = Actor {
            processor_id,
            reason: Some(&reason),
        };
        let mut tx = conn.begin().await?;
        changed.merge(cancel_locked(&mut tx, victim, actor).await?);
        tx.commit().await?;
        tracing::debug!(%victim, %task_id, group, "task cancelled to make room");
    }
    Ok(changed)
}

/// `tasker.admit_held`: admits held steps of `groups` up to their limits;
/// returns the queues it sent to.
pub async fn admit_held(
    conn: &mut PgConnection,
    groups: &[String],
    processor_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT tasker.admit_held($1, $2)")
        .bind(groups)
        .bind(processor_id)
        .fetch_one(&mut *conn)
        .await?)
}

/// `tasker.admit_tasks`: admits waiting tasks of `groups` up to their
/// limits and enqueues their ready steps; returns the queues it sent to.
pub async fn admit_tasks(
    conn: &mut PgConnection,
    groups: &[String],
    processor_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT tasker.admit_tasks($1, $2)")
        .bind(groups)
        .bind(processor_id)
        .fetch_one(&mut *conn)
        .await?)
}

/// After a task ended (cancelled, resolved, failed) in the caller's
/// transaction: admits what its slots let in, the waiting tasks of its
/// template group and the held steps of its steps' groups. Nothing when the
/// task has no group (one cheap statement).
pub(crate) async fn release_task(
    conn: &mut PgConnection,
    task_id: Uuid,
    processor_id: &str,
) -> Result<Vec<String>, StoreError> {
    let queues: Vec<String> = sqlx::query_scalar(
        "WITH g AS (
             SELECT ARRAY(SELECT t.concurrency_group FROM tasker.tasks t
                           WHERE t.id = $1 AND t.concurrency_group IS NOT NULL) AS tasks,
                    ARRAY(SELECT DISTINCT s.concurrency_group FROM tasker.steps s
                           WHERE s.task_id = $1 AND s.concurrency_group IS NOT NULL) AS steps)
         SELECT CASE WHEN cardinality(g.tasks) = 0 AND cardinality(g.steps) = 0
                     THEN '{}'::text[]
                     ELSE tasker.admit_tasks(g.tasks, $2) || tasker.admit_held(g.steps, $2)
                END
           FROM g",
    )
    .bind(task_id)
    .bind(processor_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(queues)
}

/// What one [`sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Groups looked at (with waiting tasks or held steps).
    pub groups: usize,
    /// Steps enqueued (admitted, or ready steps of admitted tasks).
    pub enqueued: usize,
}

/// The orchestrators' sweep: admits, in every group with waiting tasks or
/// held steps (at most `max_groups` of each kind), what fits. Admissions
/// happen as slots free (results, cancels); this catches what those paths
/// missed: a crash between a task's creation and its admission, a resumed
/// pause, a delayed start come due.
pub async fn sweep(
    pool: &PgPool,
    max_groups: i64,
    processor_id: &str,
) -> Result<(Swept, Changed), StoreError> {
    let mut tx = pool.begin().await?;
    let task_groups: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT concurrency_group FROM tasker.tasks
          WHERE concurrency_group IS NOT NULL AND NOT concurrency_admitted
            AND state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
          LIMIT $1",
    )
    .bind(max_groups)
    .fetch_all(&mut *tx)
    .await?;
    let step_groups: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT concurrency_group FROM tasker.steps
          WHERE concurrency_group IS NOT NULL AND state = 'pending' AND pending_parents = 0
          LIMIT $1",
    )
    .bind(max_groups)
    .fetch_all(&mut *tx)
    .await?;
    let mut queues = Vec::new();
    if !task_groups.is_empty() {
        queues.extend(admit_tasks(&mut tx, &task_groups, processor_id).await?);
    }
    if !step_groups.is_empty() {
        queues.extend(admit_held(&mut tx, &step_groups, processor_id).await?);
    }
    tx.commit().await?;
    let swept = Swept {
        groups: task_groups.len() + step_groups.len(),
        enqueued: queues.len(),
    };
    let mut changed = Changed::none();
    for q in queues {
        changed = changed.with_queue(q);
    }
    Ok((swept, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_name_template_step_and_key() {
        let t = Template::from_yaml_str(
            "namespace: demo\nname: t\nversion: 1.0.0\n\
             concurrency: { key: input.c, limit: 3, strategy: cancel_newest }\nsteps:\n\
             \x20 - { name: a, handler: { name: h }, concurrency: { key: input.r, limit: 2 } }\n\
             \x20 - { name: b, handler: { name: h }, depends_on: [a] }\n",
            "t.yaml",
        )
        .expect("valid");
        let g = groups(&t, &json!({"c": "x", "r": 7}));
        assert_eq!(g.steps, vec![Some("demo/t/a:7".to_string()), None]);
        assert_eq!(g.step_limits, vec![Some(2), None]);
        assert_eq!(
            g.task,
            Some(("demo/t:x".to_string(), 3, Strategy::CancelNewest))
        );
        let long = "y".repeat(MAX_KEY_VALUE + 1);
        let g = groups(&t, &json!({ "c": long }));
        let (name, _, _) = g.task.expect("task group");
        assert!(
            name.starts_with("demo/t:sha256:") && name.len() == 14 + 64,
            "{name}"
        );
        assert_eq!(
            groups(&t, &json!({})).steps[0].as_deref(),
            Some("demo/t/a:")
        );
    }
}
