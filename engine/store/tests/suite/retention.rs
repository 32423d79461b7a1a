//! Retention (`tasker_store::retention`) against a real PostgreSQL: the dry
//! run's counts, what a sweep deletes (and what it leaves, row by row in every
//! table that refers to a task), batching, and skipping locked tasks.
//!
//! Tasks are created by the store and finished behind its back (state and
//! `completed_at` set by an UPDATE, history rows added), so that their ages
//! can be anything. Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_store::retention::{self, NamespaceCount, RetentionPolicy};
use tasker_store::task;
use tasker_store::template::TemplateCache;
use tasker_testkit::{migrated, new_task, register_example, register_inline, DIAMOND_YAML};

const DAY: i64 = 24 * 3600;

/// 30 days by default, `billing` 90 days, `audit` forever.
fn policy() -> RetentionPolicy {
    RetentionPolicy {
        default_age_seconds: 30 * DAY as u64,
        namespaces: BTreeMap::from([("billing".into(), 90 * DAY as u64), ("audit".into(), 0)]),
    }
}

/// Registers `demo/diamond` and copies of it in `billing` and `audit`.
async fn templates(pool: &PgPool) {
    register_example(pool, "diamond").await;
    for ns in ["billing", "audit"] {
        let yaml = DIAMOND_YAML.replace("namespace: demo", &format!("namespace: {ns}"));
        register_inline(pool, &yaml).await;
    }
}

async fn create(pool: &PgPool, namespace: &str, key: Option<&str>) -> Uuid {
    let mut req = new_task(namespace, "diamond", json!({"value": 3}));
    req.idempotency_key = key.map(String::from);
    let (created, _) = task::create(pool, &TemplateCache::default(), &req, "test")
        .await
        .unwrap();
    assert!(created.created);
    created.task_id
}

/// Moves a task to `state` with `completed_at` `days_ago`, as if it had run:
/// its steps complete with a result row each, a schedule fire row and a task
/// pause naming it; an `error` task's `start` step is in error (and so in
/// the dead-letter queue, by its trigger).
async fn finish(pool: &PgPool, id: Uuid, state: &str, days_ago: i64) {
    sqlx::query(
        "UPDATE tasker.tasks SET state = $2, completed_at = now() - $3 * interval '1 day'
          WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(days_ago)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE tasker.steps SET state = CASE WHEN $2 = 'error' AND name = 'start'
                                              THEN 'error' ELSE 'complete' END
          WHERE task_id = $1",
    )
    .bind(id)
    .bind(state)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO tasker.step_results (step_id, task_id, attempt, outcome)
         SELECT id, task_id, 1, 'success' FROM tasker.steps WHERE task_id = $1",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO tasker.step_logs (step_id, task_id, attempt, worker_id, lines)
         SELECT id, task_id, 1, 'w', '[]' FROM tasker.steps WHERE task_id = $1",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
    decorate(pool, id).await;
}

/// A schedule fire row and a task pause naming the task.
async fn decorate(pool: &PgPool, id: Uuid) {
    sqlx::query(
        "INSERT INTO tasker.schedule_fires (schedule_id, fire_at, task_id)
         VALUES ($1, now(), $2)",
    )
    .bind(Uuid::now_v7())
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO tasker.pauses (scope, target) VALUES ('task', $1)")
        .bind(id.to_string())
        .execute(pool)
        .await
        .unwrap();
}

/// Every table that refers to a task, with the column that does.
const TABLES: [(&str, &str); 10] = [
    ("tasker.tasks", "id"),
    ("tasker.steps", "task_id"),
    ("tasker.step_edges", "task_id"),
    ("tasker.task_transitions", "task_id"),
    ("tasker.step_transitions", "task_id"),
    ("tasker.step_results", "task_id"),
    ("tasker.step_logs", "task_id"),
    ("tasker.step_dlq", "task_id"),
    ("tasker.schedule_fires", "task_id"),
    ("tasker.pauses", "target::uuid"),
];

/// Rows of each of [`TABLES`] that refer to one of `ids`.
async fn census(pool: &PgPool, ids: &[Uuid]) -> Vec<i64> {
    let mut counts = Vec::new();
    for (table, column) in TABLES {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE {column} = ANY($1)"
        ))
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap();
        counts.push(n);
    }
    counts
}

/// Rows of each of [`TABLES`].
async fn totals(pool: &PgPool) -> Vec<i64> {
    let mut counts = Vec::new();
    for (table, _) in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap();
        counts.push(n);
    }
    counts
}

async fn completed_at(pool: &PgPool, id: Uuid) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT completed_at FROM tasker.tasks WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn the_plan_counts_and_the_sweep_removes_exactly_the_old_finished_tasks(pool: PgPool) {
    migrated(&pool).await;
    templates(&pool).await;
    let mut gone = Vec::new();
    let mut kept = Vec::new();
    // demo (30 days): four old finished tasks, one in each terminal state.
    for (state, days) in [
        ("complete", 40),
        ("error", 35),
        ("cancelled", 31),
        ("resolved_manually", 50),
    ] {
        let id = create(&pool, "demo", Some(&format!("key-{state}"))).await;
        finish(&pool, id, state, days).await;
        gone.push(id);
    }
    // demo: finished recently; and unfinished ones, one with a stray old
    // completed_at (a state, not a date, says what is finished).
    let recent = create(&pool, "demo", None).await;
    finish(&pool, recent, "complete", 10).await;
    kept.push(recent);
    let pending = create(&pool, "demo", None).await;
    sqlx::query("UPDATE tasker.tasks SET created_at = now() - interval '200 days' WHERE id = $1")
        .bind(pending)
        .execute(&pool)
        .await
        .unwrap();
    decorate(&pool, pending).await;
    kept.push(pending);
    let running = create(&pool, "demo", None).await;
    sqlx::query(
        "UPDATE tasker.tasks SET state = 'steps_in_process',
                completed_at = now() - interval '100 days' WHERE id = $1",
    )
    .bind(running)
    .execute(&pool)
    .await
    .unwrap();
    kept.push(running);
    // billing (90 days): one past it, one not.
    let billing_old = create(&pool, "billing", None).await;
    finish(&pool, billing_old, "complete", 100).await;
    gone.push(billing_old);
    let billing_young = create(&pool, "billing", None).await;
    finish(&pool, billing_young, "error", 40).await;
    kept.push(billing_young);
    // audit: kept forever.
    let audit = create(&pool, "audit", None).await;
    finish(&pool, audit, "complete", 1000).await;
    kept.push(audit);

    let gone_before = census(&pool, &gone).await;
    assert!(gone_before.iter().all(|&n| n > 0), "{gone_before:?}");
    let kept_before = census(&pool, &kept).await;
    let totals_before = totals(&pool).await;

    // The dry run: exact counts and dates, nothing changed.
    let demo_dates = [
        completed_at(&pool, gone[3]).await,
        completed_at(&pool, gone[2]).await,
    ];
    let billing_date = completed_at(&pool, billing_old).await;
    let plan = retention::plan(&pool, &policy(), Utc::now()).await.unwrap();
    let row =
        |namespace: &str, age: i64, tasks: i64, dates: Option<[DateTime<Utc>; 2]>| NamespaceCount {
            namespace: namespace.into(),
            age_seconds: age,
            tasks,
            oldest_completed_at: dates.map(|d| d[0]),
            newest_completed_at: dates.map(|d| d[1]),
        };
    assert_eq!(
        plan,
        vec![
            row("audit", 0, 0, None),
            row("billing", 90 * DAY, 1, Some([billing_date, billing_date])),
            row("demo", 30 * DAY, 4, Some(demo_dates)),
        ]
    );
    assert_eq!(
        totals(&pool).await,
        totals_before,
        "a dry run changes nothing"
    );

    // The sweep.
    let mut batches = Vec::new();
    let swept = retention::run(&pool, &policy(), 500, |s| {
        batches.push(s.last_batch);
        ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert_eq!((swept.tasks, swept.batches, swept.done), (5, 1, true));
    assert_eq!(batches, [5]);
    assert_eq!(census(&pool, &gone).await, vec![0; TABLES.len()]);
    assert_eq!(census(&pool, &kept).await, kept_before);
    let expected: Vec<i64> = totals_before
        .iter()
        .zip(&gone_before)
        .map(|(total, gone)| total - gone)
        .collect();
    assert_eq!(
        totals(&pool).await,
        expected,
        "only the removed tasks' rows went"
    );

    // Nothing is left to do; the plan agrees.
    assert_eq!(
        retention::sweep_batch(&pool, &policy(), 500).await.unwrap(),
        0
    );
    let plan = retention::plan(&pool, &policy(), Utc::now()).await.unwrap();
    assert!(plan.iter().all(|p| p.tasks == 0), "{plan:?}");

    // The idempotency key went with its task: it creates a new one now.
    let again = create(&pool, "demo", Some("key-complete")).await;
    assert_ne!(again, gone[0]);
}

#[sqlx::test(migrations = false)]
async fn a_sweep_deletes_in_batches_oldest_first(pool: PgPool) {
    migrated(&pool).await;
    templates(&pool).await;
    let mut old = Vec::new();
    for days in [35, 60, 31, 45, 90] {
        let id = create(&pool, "demo", None).await;
        finish(&pool, id, "complete", days).await;
        old.push((days, id));
    }
    let young = create(&pool, "demo", None).await;
    finish(&pool, young, "complete", 1).await;

    // The first batch of two takes the two oldest (90 and 60 days).
    assert_eq!(
        retention::sweep_batch(&pool, &policy(), 2).await.unwrap(),
        2
    );
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tasker.tasks ORDER BY completed_at")
        .fetch_all(&pool)
        .await
        .unwrap();
    let by_age = |d: i64| old.iter().find(|(days, _)| *days == d).map(|(_, id)| *id);
    let expected: Vec<Uuid> = [45, 35, 31]
        .into_iter()
        .filter_map(by_age)
        .chain([young])
        .collect();
    assert_eq!(left, expected);

    // Five old tasks (the three left and two more) in batches of two: 2, 2, 1.
    for _ in 0..2 {
        let id = create(&pool, "demo", None).await;
        finish(&pool, id, "complete", 40).await;
    }
    let mut progress = Vec::new();
    let swept = retention::run(&pool, &policy(), 2, |s| {
        progress.push((s.last_batch, s.tasks));
        ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert_eq!(progress, [(2, 2), (2, 4), (1, 5)]);
    assert_eq!((swept.tasks, swept.batches, swept.done), (5, 3, true));
    assert_eq!(census(&pool, &[young]).await[0], 1, "the young task stays");

    // A caller may stop after any batch.
    for _ in 0..3 {
        let id = create(&pool, "demo", None).await;
        finish(&pool, id, "complete", 40).await;
    }
    let swept = retention::run(&pool, &policy(), 1, |_| ControlFlow::Break(()))
        .await
        .unwrap();
    assert_eq!((swept.tasks, swept.batches, swept.done), (1, 1, false));
}

#[sqlx::test(migrations = false)]
async fn a_locked_task_is_skipped_not_waited_for(pool: PgPool) {
    migrated(&pool).await;
    templates(&pool).await;
    let mut ids = Vec::new();
    for days in [40, 50, 60] {
        let id = create(&pool, "demo", None).await;
        finish(&pool, id, "complete", days).await;
        ids.push(id);
    }
    // Another transaction holds the oldest task's row (as an operator's would).
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM tasker.tasks WHERE id = $1 FOR UPDATE")
        .bind(ids[2])
        .execute(&mut *holder)
        .await
        .unwrap();
    let swept = tokio::time::timeout(
        Duration::from_secs(5),
        retention::sweep_batch(&pool, &policy(), 10),
    )
    .await
    .expect("the sweep waited on a locked task")
    .unwrap();
    assert_eq!(swept, 2);
    assert_eq!(
        census(&pool, &ids[2..]).await[0],
        1,
        "the locked task stays"
    );
    holder.rollback().await.unwrap();
    assert_eq!(
        retention::sweep_batch(&pool, &policy(), 10).await.unwrap(),
        1
    );
    assert_eq!(census(&pool, &ids).await, vec![0; TABLES.len()]);
}

#[sqlx::test(migrations = false)]
async fn two_sweepers_at_once_delete_each_task_once(pool: PgPool) {
    migrated(&pool).await;
    templates(&pool).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let id = create(&pool, if i % 2 == 0 { "demo" } else { "billing" }, None).await;
        finish(&pool, id, "cancelled", 100 + i).await;
        ids.push(id);
    }
    let policy = policy();
    let sweep = || retention::run(&pool, &policy, 4, |_| ControlFlow::Continue(()));
    let (a, b) = tokio::join!(sweep(), sweep());
    let (a, b) = (a.unwrap(), b.unwrap());
    // Whatever one left to the other (skipped while locked), a last sweep takes.
    let rest = sweep().await.unwrap();
    assert_eq!(a.tasks + b.tasks + rest.tasks, 60);
    assert_eq!(census(&pool, &ids).await, vec![0; TABLES.len()]);
}
