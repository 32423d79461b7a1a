//! Time with the whole stack: a delayed task runs only from its `run_at`;
//! schedules fire through the orchestrators' tick loops.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::state::TaskState;
use tasker_store::schedule::{self, CatchUp, NewSchedule};
use tasker_store::task::{self, Start};
use tasker_store::template::TemplateCache;
use tasker_testkit::{migrated, new_task, register_example, registry, Stack};

#[sqlx::test(migrations = false)]
async fn a_delayed_task_runs_only_from_its_run_at(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let h = Stack::start(&pool, registry()).await;
    let start = Start {
        run_at: None,
        delay_seconds: Some(3),
    };
    let (created, changed) = task::create_at(
        &pool,
        &TemplateCache::default(),
        &new_task("demo", "diamond", json!({"value": 3})),
        &start,
        "test",
    )
    .await
    .unwrap();
    h.wakeups().announce(&changed);
    let id = created.task_id;
    let run_at = task::detail(&pool, id).await.unwrap().task.run_at.unwrap();
    // A worker is running and was woken: still nothing starts.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let early = h.steps(id).await;
    assert!(
        early
            .values()
            .all(|s| s.started_at.is_none() && s.attempts == 0),
        "a step started before run_at: {early:?}"
    );
    assert_eq!(h.wait(id).await, TaskState::Complete);
    let steps = h.steps(id).await;
    let first_start = steps.values().filter_map(|s| s.started_at).min().unwrap();
    assert!(
        first_start >= run_at,
        "started {first_start}, run_at {run_at}"
    );
    assert_eq!(steps["join"].result, Some(json!({"value": 784})));
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn two_orchestrators_fire_a_schedule_once_a_tick_and_the_tasks_run(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let h = Stack::builder(&pool)
        .registry(registry())
        .orchestrators(2)
        .config(|c| c.orchestration.schedule_tick_interval_ms = 100)
        .start()
        .await;
    let s = schedule::create(
        &pool,
        &TemplateCache::default(),
        &NewSchedule {
            name: "every-second".into(),
            namespace: "demo".into(),
            template_name: "diamond".into(),
            template_version: None,
            cron: "* * * * * *".into(),
            timezone: "America/New_York".into(),
            context: json!({"value": 3}),
            catch_up: CatchUp::Skip,
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    schedule::pause(&pool, s.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fires: Vec<(DateTime<Utc>, Option<Uuid>)> = sqlx::query_as(
        "SELECT fire_at, task_id FROM tasker.schedule_fires WHERE schedule_id = $1 ORDER BY fire_at",
    )
    .bind(s.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!((4..=7).contains(&fires.len()), "{fires:?}");
    for w in fires.windows(2) {
        assert_eq!(w[1].0 - w[0].0, chrono::Duration::seconds(1), "{fires:?}");
    }
    for (_, task_id) in &fires {
        let id = task_id.expect("a task per tick");
        assert_eq!(h.wait(id).await, TaskState::Complete);
        let detail = task::detail(&pool, id).await.unwrap();
        assert_eq!(detail.task.schedule_id, Some(s.id));
    }
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasker.tasks WHERE schedule_id = $1")
        .bind(s.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tasks as usize, fires.len(), "one task per tick");
    h.stop().await;
}
