//! Flow control with the whole stack: priority with a backlog, and pausing
//! and resuming a running task.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::state::TaskState;
use tasker_store::pause::{self, PauseScope};
use tasker_store::task;
use tasker_store::template::TemplateCache;
use tasker_testkit::{
    eventually, migrated, new_task, register_example, register_inline, registry, Stack,
};

const ONE_STEP: &str = "
namespace: demo
name: one
version: 1.0.0
steps:
  - name: only
    handler:
      name: math.compute
      config: { op: square }
";

async fn create_many(pool: &PgPool, n: usize, priority: i32) -> Vec<Uuid> {
    let cache = TemplateCache::default();
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let made = join_all(chunk.iter().map(|_| {
            let mut req = new_task("demo", "one", json!({"value": 2}));
            req.priority = priority;
            let cache = &cache;
            async move {
                task::create(pool, cache, &req, "test")
                    .await
                    .unwrap()
                    .0
                    .task_id
            }
        }))
        .await;
        ids.extend(made);
    }
    ids
}

async fn complete_among(pool: &PgPool, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM tasker.tasks WHERE id = ANY ($1) AND state = 'complete'",
    )
    .bind(ids)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn high_priority_tasks_overtake_a_backlog_of_5000_and_the_backlog_still_drains(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, ONE_STEP).await;
    let low = create_many(&pool, 5_000, 0).await;
    let h = Stack::builder(&pool)
        .registry(registry())
        .workers(2)
        .start()
        .await;
    // The backlog is being worked off when the urgent work arrives.
    assert!(
        eventually(Duration::from_secs(30), || async {
            complete_among(&pool, &low).await >= 100
        })
        .await,
        "the backlog does not start"
    );
    let submitted = Instant::now();
    let high = create_many(&pool, 20, 3_600).await;
    h.wakeups()
        .announce(&tasker_model::change::Changed::queue("steps_demo"));
    assert!(
        eventually(Duration::from_secs(30), || async {
            complete_among(&pool, &high).await == 20
        })
        .await,
        "the high-priority tasks did not finish"
    );
    let took = submitted.elapsed();
    let low_done = complete_among(&pool, &low).await;
    assert!(
        low_done < 4_000,
        "the high-priority tasks finished only after {low_done} of 5000 low ones ({took:?})"
    );
    // Low priority still progresses, to the end.
    assert!(
        eventually(Duration::from_secs(120), || async {
            complete_among(&pool, &low).await == 5_000
        })
        .await,
        "the backlog did not drain"
    );
    eprintln!(
        "20 high-priority tasks done {took:?} after submission, with {low_done}/5000 low ones done"
    );
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_paused_task_stops_between_steps_and_resumes_where_it_stopped(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "linear").await;
    let h = Stack::start(&pool, registry()).await;
    let (created, _) = task::create(
        &pool,
        &TemplateCache::default(),
        &new_task("demo", "linear", json!({"value": 3})),
        "test",
    )
    .await
    .unwrap();
    let id = created.task_id;
    // Paused before the first claim or while a step runs: either way what
    // runs finishes, and nothing new starts.
    pause::pause(
        &pool,
        PauseScope::Task,
        &id.to_string(),
        Some("test"),
        "test",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let held = h.steps(id).await;
    let started: Vec<&str> = held
        .iter()
        .filter(|(_, s)| s.started_at.is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(
        started.len() <= 1,
        "steps started while paused: {started:?}"
    );
    assert_ne!(
        task::detail(&pool, id).await.unwrap().task.state,
        "complete"
    );
    let (_, changed) = pause::resume(&pool, PauseScope::Task, &id.to_string())
        .await
        .unwrap();
    h.wakeups().announce(&changed);
    assert_eq!(h.wait(id).await, TaskState::Complete);
    assert_eq!(h.steps(id).await["d"].result, Some(json!({"value": 400})));
    h.stop().await;
}
