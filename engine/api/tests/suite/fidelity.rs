//! Task input over HTTP arrives exactly or is refused: an integer beyond 64
//! bits, a NUL character or a repeated key is a 422 naming where it is, and
//! no task is created; the 64-bit extremes are stored exactly.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use reqwest::{Client, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

use tasker_testkit::{migrated, register_inline, Stack, BOOTSTRAP_KEY};

async fn create(stack: &Stack, context: &str) -> (StatusCode, Value) {
    let body = format!(r#"{{"namespace": "demo", "name": "one", "context": {context}}}"#);
    let res = Client::new()
        .post(format!("{}/v1/tasks", stack.base_url()))
        .bearer_auth(BOOTSTRAP_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

#[sqlx::test(migrations = false)]
async fn task_input_is_stored_exactly_or_refused(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: one\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: h }\n",
    )
    .await;
    let api = Stack::builder(&pool).workers(0).api().start().await;
    for (context, path) in [
        (r#"{"big": 18446744073709551616}"#, "$.context.big"),
        (
            r#"{"list": [1, -9223372036854775809]}"#,
            "$.context.list[1]",
        ),
        (r#"{"a": 1, "a": 2}"#, "$.context"),
        (r#"{"s": "nul \u0000 here"}"#, "$.context.s"),
    ] {
        let (status, body) = create(&api, context).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{context}: {body}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(path), "{context}: {message}");
    }
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasker.tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tasks, 0, "a refused request creates nothing");
    // The extremes of 64 bits and a double arrive as sent.
    let (status, body) = create(
        &api,
        r#"{"max": 18446744073709551615, "min": -9223372036854775808, "x": 0.9627240348720673}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stored: String = sqlx::query_scalar("SELECT context::text FROM tasker.tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(stored.contains("18446744073709551615"), "{stored}");
    assert!(stored.contains("-9223372036854775808"), "{stored}");
    assert!(stored.contains("0.9627240348720673"), "{stored}");
}
