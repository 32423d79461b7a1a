//! Handler logs over HTTP (`GET /v1/tasks/{id}/steps/{step}/logs`): the
//! example `ecommerce.charge_payment` fails its first attempt and succeeds on
//! the second, logging through `ctx.log` on both; the route gives both
//! attempts' lines by step name and by step id; an
//! unknown step is 404, a key limited to another namespace 403. (The route
//! matrix of api.rs checks 401, 403 by permission and bad input.)
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use tasker_api::keys::{self, Permission};
use tasker_api::types::StepLogs;
use tasker_model::state::TaskState;
use tasker_store::task;
use tasker_store::template::TemplateCache;
use tasker_testkit::{migrated, new_task, register_example, Stack, BOOTSTRAP_KEY};

async fn get(stack: &Stack, key: &str, path: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", stack.base_url()))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The body of a 200 answer to `path`, read as the API's type.
async fn logs_of(stack: &Stack, path: &str) -> StepLogs {
    let (status, body) = get(stack, BOOTSTRAP_KEY, path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

#[sqlx::test(migrations = false)]
async fn both_attempts_lines_by_name_and_id_404_and_403(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "order_fulfillment").await;
    let stack = Stack::builder(&pool)
        .api()
        .worker(|w| w.namespaces = vec!["ecommerce".into()])
        .start()
        .await;
    let order = json!({
        "order_id": "a1001",
        "customer_email": "ada@example.com",
        "items": [{"sku": "KB-01", "quantity": 1, "price_cents": 8900}],
        "simulate_payment_failures": 1
    });
    let req = new_task("ecommerce", "order_fulfillment", order);
    let (created, changed) = task::create(&pool, &TemplateCache::default(), &req, "test")
        .await
        .unwrap();
    stack.wakeups().announce(&changed);
    let id = created.task_id;
    assert_eq!(stack.wait(id).await, TaskState::Complete);

    let logs = logs_of(&stack, &format!("/v1/tasks/{id}/steps/charge_payment/logs")).await;
    assert_eq!((logs.task_id, logs.step.as_str()), (id, "charge_payment"));
    let seen: Vec<(u32, Vec<(&str, &str)>)> = logs
        .attempts
        .iter()
        .map(|a| {
            let lines = a
                .lines
                .iter()
                .map(|l| (l.level.as_str(), l.message.as_str()))
                .collect();
            (a.attempt, lines)
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                1,
                vec![
                    ("info", "charging order a1001 (attempt 1)"),
                    (
                        "warn",
                        "payment provider timed out; the retry policy decides when to try again"
                    ),
                ]
            ),
            (2, vec![("info", "charging order a1001 (attempt 2)")]),
        ]
    );
    let step_id = stack.steps(id).await["charge_payment"].id;
    let by_id = logs_of(&stack, &format!("/v1/tasks/{id}/steps/{step_id}/logs")).await;
    assert_eq!(by_id, logs);
    // A step that logged nothing: an empty list, not an error.
    let quiet = logs_of(&stack, &format!("/v1/tasks/{id}/steps/ship_order/logs")).await;
    assert!(quiet.attempts.is_empty());

    let (status, body) = get(
        &stack,
        BOOTSTRAP_KEY,
        &format!("/v1/tasks/{id}/steps/nope/logs"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // A key limited to another namespace may not read an `ecommerce` task's logs.
    let spec = keys::KeySpec {
        namespaces: Some(vec!["elsewhere".into()]),
        ..keys::KeySpec::new("elsewhere", &[Permission::TasksRead])
    };
    let (_, secret) = keys::create_key(&pool, &spec).await.unwrap();
    let secret = secret.as_str();
    let (status, body) = get(
        &stack,
        secret,
        &format!("/v1/tasks/{id}/steps/charge_payment/logs"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    stack.stop().await;
}
