//! `POST /v1/tasks/batch` against a real server and database: all tasks or
//! none, the refused task named by its position, auth as `POST /v1/tasks`.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use tasker_testkit::{migrated, Stack, BOOTSTRAP_KEY, DIAMOND_YAML};

async fn start(pool: &PgPool) -> (Stack, String) {
    migrated(pool).await;
    let stack = Stack::builder(pool)
        .orchestrators(0)
        .workers(0)
        .api()
        .config(|c| c.web.auth.enabled = true)
        .start()
        .await;
    let base = stack.base_url();
    let res = Client::new()
        .post(format!("{base}/v1/templates"))
        .bearer_auth(BOOTSTRAP_KEY)
        .header("content-type", "application/yaml")
        .body(DIAMOND_YAML)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{:?}", res.text().await);
    (stack, base)
}

async fn post(base: &str, body: &Value) -> (StatusCode, Value) {
    let res = Client::new()
        .post(format!("{base}/v1/tasks/batch"))
        .bearer_auth(BOOTSTRAP_KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

fn diamond(value: Value) -> Value {
    json!({"namespace": "demo", "name": "diamond", "context": {"value": value}})
}

async fn tasks(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tasker.tasks")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_batch_creates_its_tasks_in_order(pool: PgPool) {
    let (_stack, base) = start(&pool).await;
    let mut keyed = diamond(json!(5));
    keyed["idempotency_key"] = json!("k-1");
    let body = json!({"tasks": [diamond(json!(1)), keyed.clone(), diamond(json!(3)), keyed]});
    let (status, created) = post(&base, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let created = created["tasks"].as_array().unwrap();
    let flags: Vec<&Value> = created.iter().map(|c| &c["created"]).collect();
    assert_eq!(flags, [true, true, true, false]);
    assert_eq!(created[1]["task_id"], created[3]["task_id"]);
    // Each task is a task of its own, with its own input.
    for (i, value) in [(0, 1), (1, 5), (2, 3)] {
        let id: uuid::Uuid = created[i]["task_id"].as_str().unwrap().parse().unwrap();
        let v: i64 = sqlx::query_scalar(
            "SELECT (context->>'value')::bigint FROM tasker.tasks WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(v, value);
    }
    assert_eq!(tasks(&pool).await, 3);

    // Every task existed already: 200.
    let mut again = diamond(json!(5));
    again["idempotency_key"] = json!("k-1");
    let (status, body) = post(&base, &json!({"tasks": [again]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tasks"][0]["task_id"], created[1]["task_id"]);
}

#[sqlx::test(migrations = false)]
async fn a_refused_task_refuses_the_batch(pool: PgPool) {
    let (_stack, base) = start(&pool).await;
    let ok = diamond(json!(1));
    let unknown = json!({"namespace": "demo", "name": "nope"});
    let cases = [
        (
            json!({"tasks": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            "1..=1000",
        ),
        (
            json!({"tasks": vec![ok.clone(); 1001]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            "1..=1000",
        ),
        (
            json!({"tasks": [ok.clone(), ok.clone(), diamond(json!("x"))]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(2),
            "tasks[2]: task input rejected",
        ),
        (
            json!({"tasks": [ok.clone(), unknown]}),
            StatusCode::NOT_FOUND,
            Some(1),
            "tasks[1]: template demo/nope",
        ),
        (
            json!({"tasks": [ok.clone(), {"namespace": "demo", "name": "diamond", "context": {"value": 1}, "delay_seconds": 100_000_000}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(1),
            "tasks[1]:",
        ),
    ];
    for (body, status, index, says) in cases {
        let (got, err) = post(&base, &body).await;
        assert_eq!(got, status, "{err}");
        assert!(err["message"].as_str().unwrap().contains(says), "{err}");
        if let Some(i) = index {
            assert_eq!(err["details"]["index"], i, "{err}");
        }
        assert_eq!(tasks(&pool).await, 0, "nothing is created: {err}");
    }
    // A NUL is named by its path.
    let (got, err) = post(&base, &json!({"tasks": [ok, diamond(json!("a\u{0}b"))]})).await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("tasks[1].context.value"),
        "{err}"
    );
    // Unknown fields are refused, as for one task.
    let (got, err) = post(&base, &json!({"tasks": [], "extra": 1})).await;
    assert!(got.is_client_error(), "{err}");
    assert_eq!(tasks(&pool).await, 0);
}

#[sqlx::test(migrations = false)]
async fn a_batch_needs_a_key(pool: PgPool) {
    let (_stack, base) = start(&pool).await;
    let res = Client::new()
        .post(format!("{base}/v1/tasks/batch"))
        .json(&json!({"tasks": [diamond(json!(1))]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(tasks(&pool).await, 0);
}
