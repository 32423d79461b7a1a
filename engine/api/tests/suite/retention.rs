//! `POST /v1/retention/run` against a real server and database: the dry run's
//! counts with the configured per-namespace ages, a real run in batches, and
//! the checks of its body.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use tasker_store::task;
use tasker_store::template::TemplateCache;
use tasker_testkit::{migrated, new_task, register_example, Stack, BOOTSTRAP_KEY};

async fn finished_task(pool: &PgPool, days_ago: i64) -> Uuid {
    let req = new_task("demo", "diamond", json!({"value": 3}));
    let (created, _) = task::create(pool, &TemplateCache::default(), &req, "test")
        .await
        .unwrap();
    sqlx::query(
        "UPDATE tasker.tasks SET state = 'complete',
                completed_at = now() - $2 * interval '1 day' WHERE id = $1",
    )
    .bind(created.task_id)
    .bind(days_ago)
    .execute(pool)
    .await
    .unwrap();
    created.task_id
}

async fn post(stack: &Stack, body: Value) -> (StatusCode, Value) {
    let res = Client::new()
        .post(format!("{}/v1/retention/run", stack.base_url()))
        .bearer_auth(BOOTSTRAP_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

#[sqlx::test(migrations = false)]
async fn a_dry_run_counts_and_a_run_deletes_in_batches(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    for days in [40, 50, 60] {
        finished_task(&pool, days).await;
    }
    let young = finished_task(&pool, 5).await;
    let stack = Stack::builder(&pool)
        .orchestrators(0)
        .workers(0)
        .api()
        .config(|c| {
            c.retention.finished_task_age_seconds = 365 * 24 * 3600;
            c.retention.namespaces.insert("demo".into(), 30 * 24 * 3600);
        })
        .start()
        .await;

    let (status, plan) = post(&stack, json!({"dry_run": true})).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["deleted"], 0);
    let demo = &plan["namespaces"][0];
    assert_eq!(demo["namespace"], "demo");
    assert_eq!(demo["age_seconds"], 30 * 24 * 3600);
    assert_eq!(demo["tasks"], 3);
    assert!(demo["oldest_completed_at"].is_string(), "{plan}");

    for (body, field) in [
        (json!({"dry_run": false, "batch_size": 0}), "batch_size"),
        (json!({"dry_run": false, "batch_size": 1001}), "batch_size"),
        (json!({"dry_run": 1}), "dry_run"),
        (json!({"dry_run": true, "older_than": 3}), "older_than"),
    ] {
        let (status, err) = post(&stack, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        let named = err["details"]["field"] == field
            || err["message"].as_str().unwrap_or("").contains(field);
        assert!(named, "{body}: the error should name {field}: {err}");
    }
    let (status, err) = post(&stack, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");

    let (status, run) = post(&stack, json!({"dry_run": false, "batch_size": 2})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(
        (&run["deleted"], &run["batches"], &run["done"]),
        (&json!(3), &json!(2), &json!(true))
    );
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tasker.tasks")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, [young]);
    let (_, again) = post(&stack, json!({"dry_run": false})).await;
    assert_eq!(
        (&again["deleted"], &again["done"]),
        (&json!(0), &json!(true))
    );
    stack.stop().await;
}
