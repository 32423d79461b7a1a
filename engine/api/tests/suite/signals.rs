//! Signals over HTTP (`POST /v1/tasks/{id}/signals/{name}`, `docs/waits.md`):
//! taken by the waiting step (200) whose child then sees the payload,
//! buffered before the step waits (202), refused for a name no step waits
//! for (404) and over the body limit (413).
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use tasker_model::state::TaskState;
use tasker_testkit::{migrated, Stack, BOOTSTRAP_KEY};

const BODY_LIMIT: u64 = 64 * 1024;

/// `gate` waits for signal `open` once `start` is done; `after` runs on it.
const GATE: &str = "namespace: demo\nname: gate\nversion: 1.0.0\nsteps:\n\
\x20 - { name: start, handler: { name: demo.sleep, config: { ms: 1000 } } }\n\
\x20 - { name: gate, wait_for: { signal: open, timeout: 1h }, depends_on: [start] }\n\
\x20 - { name: after, handler: { name: math.compute }, depends_on: [gate] }\n";

async fn stack(pool: &PgPool) -> Stack {
    migrated(pool).await;
    Stack::builder(pool)
        .api()
        .config(|c| c.web.request_body_limit_bytes = BODY_LIMIT)
        .start()
        .await
}

async fn post(stack: &Stack, path: &str, content_type: &str, body: String) -> (StatusCode, Value) {
    let res = Client::new()
        .post(format!("{}{path}", stack.base_url()))
        .bearer_auth(BOOTSTRAP_KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn signal(stack: &Stack, task: &str, name: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("/v1/tasks/{task}/signals/{name}");
    post(stack, &path, "application/json", body.to_string()).await
}

async fn gated_task(stack: &Stack) -> String {
    let (status, body) = post(stack, "/v1/templates", "application/yaml", GATE.into()).await;
    assert!(status.is_success(), "{body}");
    let task = json!({"namespace": "demo", "name": "gate", "context": {"value": 4}});
    let (status, body) = post(stack, "/v1/tasks", "application/json", task.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // (The worker may not have registered yet: its steps may be listed.)
    let unserved = body["unserved"].as_array().cloned().unwrap_or_default();
    assert!(
        unserved.iter().all(|u| u["step"] != "gate"),
        "a wait step needs no worker: {body}"
    );
    body["task_id"].as_str().unwrap().to_string()
}

#[sqlx::test(migrations = false)]
async fn a_signal_is_buffered_then_taken_and_its_payload_reaches_the_child(pool: PgPool) {
    let stack = stack(&pool).await;
    let task = gated_task(&stack).await;

    let (status, body) = signal(&stack, &task, "shut", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body["message"],
        format!("no step of task {task} waits for signal 'shut'")
    );

    // `start` is still running: the signal waits for `gate`.
    let (status, body) = signal(&stack, &task, "open", json!({"payload": {"value": 5}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["consumed"], false);
    assert_eq!(body["step"], "gate");
    assert_eq!(body["step_state"], "pending");
    let (status, body) = signal(&stack, &task, "open", json!({})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one buffered signal per name: {body}"
    );

    let id = task.parse().unwrap();
    assert_eq!(stack.wait(id).await, TaskState::Complete);
    let steps = stack.steps(id).await;
    assert_eq!(steps["gate"].result, Some(json!({"value": 5})));
    // math.compute squares its parent's value: the payload's.
    assert_eq!(steps["after"].result, Some(json!({"value": 25})));
    stack.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_signal_to_a_waiting_step_completes_it_with_a_null_payload_by_default(pool: PgPool) {
    let stack = stack(&pool).await;
    let (status, body) = post(
        &stack,
        "/v1/templates",
        "application/yaml",
        "namespace: demo\nname: solo\nversion: 1.0.0\nsteps:\n\
         \x20 - { name: wait, wait_for: { signal: go, timeout: 1h } }\n"
            .into(),
    )
    .await;
    assert!(status.is_success(), "{body}");
    let task = json!({"namespace": "demo", "name": "solo"});
    let (_, body) = post(&stack, "/v1/tasks", "application/json", task.to_string()).await;
    let task = body["task_id"].as_str().unwrap().to_string();
    let (status, body) = signal(&stack, &task, "go", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["consumed"], true);
    assert_eq!(body["step_state"], "complete");
    assert_eq!(body["task_state"], "complete");
    let steps = stack.steps(task.parse().unwrap()).await;
    assert_eq!(steps["wait"].result, Some(Value::Null));
    stack.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_oversized_signal_payload_is_refused_with_413(pool: PgPool) {
    let stack = stack(&pool).await;
    let task = gated_task(&stack).await;
    let big = "x".repeat(BODY_LIMIT as usize + 1);
    let (status, body) = signal(&stack, &task, "open", json!({ "payload": big })).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "payload_too_large");
    // Nothing was recorded: a signal within the limit is still buffered.
    let (status, body) = signal(&stack, &task, "open", json!({"payload": 1})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // A payload that cannot be stored exactly is refused, not altered.
    let (status, body) = post(
        &stack,
        &format!("/v1/tasks/{task}/signals/open"),
        "application/json",
        r#"{"payload": 123456789012345678901234567890}"#.into(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    stack.stop().await;
}
