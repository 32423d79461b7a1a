//! The worker registry over HTTP: `GET /v1/workers`, and the steps no live
//! worker serves, reported when a template is registered or a task created
//! and refused with `web.require_live_workers`.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use tasker_testkit::{eventually, migrated, Stack, BOOTSTRAP_KEY, DIAMOND_YAML};

async fn post(stack: &Stack, path: &str, body: &str, yaml: bool) -> (StatusCode, Value) {
    let res = Client::new()
        .post(format!("{}{path}", stack.base_url()))
        .bearer_auth(BOOTSTRAP_KEY)
        .header(
            "content-type",
            if yaml {
                "application/yaml"
            } else {
                "application/json"
            },
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

async fn workers(stack: &Stack, all: bool) -> Vec<Value> {
    let res = Client::new()
        .get(format!("{}/v1/workers?all={all}", stack.base_url()))
        .bearer_auth(BOOTSTRAP_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["workers"].as_array().unwrap().clone()
}

const TASK: &str = r#"{"namespace": "demo", "name": "diamond", "context": {"value": 3}}"#;

#[sqlx::test(migrations = false)]
async fn steps_without_a_live_worker_are_reported(pool: PgPool) {
    migrated(&pool).await;
    let api = Stack::builder(&pool).workers(0).api().start().await;
    // No worker at all: every step of the diamond is unserved, yet registered.
    let (status, body) = post(&api, "/v1/templates", DIAMOND_YAML, true).await;
    assert_eq!(status, StatusCode::CREATED);
    let unserved = body["unserved"].as_array().unwrap();
    assert_eq!(unserved.len(), 4);
    assert_eq!(
        unserved[0],
        json!({"step": "start", "handler": "math.compute", "pool": "demo"})
    );
    let (status, body) = post(&api, "/v1/tasks", TASK, false).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["unserved"].as_array().unwrap().len(), 4);
    assert!(workers(&api, true).await.is_empty());

    // A worker with math.compute arrives: it is listed, nothing is unserved,
    // and the waiting task completes.
    let worker = Stack::builder(&pool)
        .orchestrators(0)
        .worker(|w| w.worker_id = "api-test".into())
        .start()
        .await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            workers(&api, false).await.len() == 1
        })
        .await
    );
    let listed = &workers(&api, false).await[0];
    assert_eq!(listed["id"], "api-test-0");
    assert_eq!(listed["status"], "live");
    assert_eq!(listed["runtime"], "rust");
    assert!(listed["handlers"]
        .as_array()
        .unwrap()
        .contains(&json!("math.compute")));
    // A creation reuses the registry's answer for up to a second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = post(&api, "/v1/tasks", TASK, false).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body.get("unserved").is_none(), "{body}");
    worker.stop().await;
    assert_eq!(workers(&api, true).await[0]["status"], "stopped");
}

#[sqlx::test(migrations = false)]
async fn strict_mode_refuses_unserved_steps_and_writes_nothing(pool: PgPool) {
    migrated(&pool).await;
    let api = Stack::builder(&pool)
        .workers(0)
        .api()
        .config(|c| c.web.require_live_workers = true)
        .start()
        .await;
    let (status, body) = post(&api, "/v1/templates", DIAMOND_YAML, true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("start (handler 'math.compute', pool 'demo')"),
        "{body}"
    );
    assert_eq!(body["details"]["unserved"].as_array().unwrap().len(), 4);
    let templates: i64 = sqlx::query_scalar("SELECT count(*) FROM tasker.templates")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(templates, 0);
}

#[sqlx::test(migrations = false)]
async fn breakers_show_in_readiness_and_metrics(pool: PgPool) {
    migrated(&pool).await;
    tasker_testkit::register_inline(
        &pool,
        "namespace: demo\nname: hang\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: test.hang }\n    retry: { max_attempts: 1 }\n    timeout_seconds: 1\n",
    )
    .await;
    let registry = tasker_worker::handler::HandlerRegistry::new();
    registry.register(
        "test.hang",
        tasker_worker::handler::rust::handler_fn(|_, _| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(json!({}))
        }),
    );
    let stack = Stack::builder(&pool)
        .registry(registry)
        .api()
        .worker(|w| {
            w.breakers = tasker_model::breaker::BreakerPolicy {
                enabled: true,
                failure_threshold: 1,
                reset_timeout: Duration::from_secs(60),
            };
        })
        .start()
        .await;
    let ready = |stack: &Stack| {
        let url = format!("{}/health/ready", stack.base_url());
        async move {
            let body: Value = Client::new()
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body
        }
    };
    // The worker's breakers appear once its readers ask them.
    assert!(
        eventually(Duration::from_secs(5), || async {
            ready(&stack).await["breakers"]["handlers.rust"] == "closed"
        })
        .await
    );
    let id = stack.create("hang", json!({})).await;
    assert_eq!(
        stack.wait(id).await,
        tasker_model::state::TaskState::BlockedByFailures
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            ready(&stack).await["breakers"]["handlers.rust"] == "open"
        })
        .await
    );
    let metrics = Client::new()
        .get(format!("{}/metrics", stack.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tasker_circuit_breaker_state{breaker=\"handlers.rust\"} 2"),
        "{metrics}"
    );
}
