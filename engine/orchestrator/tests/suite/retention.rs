//! The orchestrator's retention sweep (`[retention]`) on tasks that really
//! ran: with `retention.enabled`, a finished task past its age disappears
//! with every row of it; a younger one stays; off, nothing is swept.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::state::TaskState;
use tasker_testkit::{eventually, migrated, register_example, Stack};

/// Rows of every table that refers to the task.
async fn rows_of(pool: &PgPool, id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM tasker.tasks WHERE id = $1)
              + (SELECT count(*) FROM tasker.steps WHERE task_id = $1)
              + (SELECT count(*) FROM tasker.step_edges WHERE task_id = $1)
              + (SELECT count(*) FROM tasker.task_transitions WHERE task_id = $1)
              + (SELECT count(*) FROM tasker.step_transitions WHERE task_id = $1)
              + (SELECT count(*) FROM tasker.step_results WHERE task_id = $1)
              + (SELECT count(*) FROM tasker.step_dlq WHERE task_id = $1)",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn age(pool: &PgPool, id: Uuid, days: i64) {
    sqlx::query(
        "UPDATE tasker.tasks SET completed_at = now() - $2 * interval '1 day' WHERE id = $1",
    )
    .bind(id)
    .bind(days)
    .execute(pool)
    .await
    .unwrap();
}

async fn start(pool: &PgPool, enabled: bool) -> Stack {
    Stack::builder(pool)
        .workers(1)
        .config(|c| {
            c.retention.enabled = enabled;
            c.retention.interval_seconds = 1;
            c.retention.finished_task_age_seconds = 24 * 3600;
        })
        .start()
        .await
}

#[sqlx::test(migrations = false)]
async fn an_enabled_sweep_removes_old_finished_tasks_and_keeps_the_rest(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let stack = start(&pool, true).await;
    let old = stack.create("diamond", json!({"value": 3})).await;
    let young = stack.create("diamond", json!({"value": 4})).await;
    assert_eq!(stack.wait(old).await, TaskState::Complete);
    assert_eq!(stack.wait(young).await, TaskState::Complete);
    let young_rows = rows_of(&pool, young).await;
    assert!(rows_of(&pool, old).await > 10);
    age(&pool, old, 2).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            rows_of(&pool, old).await == 0
        })
        .await,
        "the sweep never removed the old task"
    );
    assert_eq!(
        rows_of(&pool, young).await,
        young_rows,
        "the young task stays whole"
    );
    stack.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_disabled_sweep_removes_nothing(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let stack = start(&pool, false).await;
    let id = stack.create("diamond", json!({"value": 3})).await;
    assert_eq!(stack.wait(id).await, TaskState::Complete);
    age(&pool, id, 2).await;
    let rows = rows_of(&pool, id).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(rows_of(&pool, id).await, rows);
    stack.stop().await;
}
