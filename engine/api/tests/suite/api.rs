//! The HTTP admin API against a real server on 127.0.0.1:0 and a real,
//! freshly migrated database per test.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use std::collections::HashSet;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use tasker_api::{self as api, keys, keys::Permission};
use tasker_testkit::{migrated, wasm_guest, Stack, BOOTSTRAP_KEY as BOOT, DIAMOND_YAML as DIAMOND};

const BODY_LIMIT: u64 = 64 * 1024;

/// A template whose root step waits for signal `open` (`docs/waits.md`).
const GATE: &str = "namespace: demo\nname: gate\nversion: 1.0.0\nsteps:\n\
  - { name: gate, wait_for: { signal: open, timeout: 1h } }\n\
  - { name: after, handler: { name: math.compute }, depends_on: [gate] }\n";

/// The API alone (no orchestrator, no worker: tasks stay where the API put
/// them) and an HTTP client sending `key` as its bearer token.
struct Server {
    base: String,
    http: Client,
    key: String,
    _stack: Stack,
}

impl Server {
    async fn start(pool: &PgPool) -> Server {
        Self::start_with(pool, true).await
    }

    async fn start_with(pool: &PgPool, auth: bool) -> Server {
        migrated(pool).await;
        let stack = Stack::builder(pool)
            .orchestrators(0)
            .workers(0)
            .api()
            .config(|c| {
                c.web.request_body_limit_bytes = BODY_LIMIT;
                c.web.auth.enabled = auth;
            })
            .start()
            .await;
        Server {
            base: stack.base_url(),
            http: Client::new(),
            key: BOOT.into(),
            _stack: stack,
        }
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    async fn register_diamond(&self) {
        let res = self
            .post("/v1/templates")
            .header("content-type", "application/yaml")
            .body(DIAMOND)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{:?}", res.text().await);
    }

    /// Registers `demo/gate` (a root step waiting for signal `open`, then
    /// `after`) and creates a task of it; returns its id.
    async fn create_gated(&self) -> String {
        let res = self
            .post("/v1/templates")
            .header("content-type", "application/yaml")
            .body(GATE)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{:?}", res.text().await);
        let res = self
            .post("/v1/tasks")
            .json(&json!({"namespace": "demo", "name": "gate"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.unwrap();
        body["task_id"].as_str().unwrap().to_string()
    }

    async fn create(&self, key: Option<&str>) -> (StatusCode, Value) {
        let mut body = json!({"namespace": "demo", "name": "diamond", "context": {"value": 3}});
        if let Some(k) = key {
            body["idempotency_key"] = json!(k);
        }
        let res = self.post("/v1/tasks").json(&body).send().await.unwrap();
        (res.status(), res.json().await.unwrap())
    }
}

/// Asserts the error shape and returns the body.
async fn error(res: Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status);
    assert!(
        res.headers().contains_key("x-request-id"),
        "every response has a request id"
    );
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].is_string(), "error shape: {body}");
    assert!(body["message"].is_string(), "error shape: {body}");
    body
}

#[sqlx::test(migrations = false)]
async fn create_task_then_repeat_idempotency_key(pool: PgPool) {
    let s = Server::start(&pool).await;
    s.register_diamond().await;
    let (status, first) = s.create(Some("order-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["created"], true);
    let (status, again) = s.create(Some("order-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["created"], false);
    assert_eq!(again["task_id"], first["task_id"]);

    // An idempotency key out of bounds: 422 naming the field (checked by the store).
    let long = "k".repeat(256);
    let (status, body) = s.create(Some(&long)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "validation_failed");
    assert_eq!(body["details"]["field"], "idempotency_key");

    let id = first["task_id"].as_str().unwrap();
    let res = s.get(&format!("/v1/tasks/{id}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let detail: Value = res.json().await.unwrap();
    assert_eq!(detail["id"], id);
    assert_eq!(detail["steps"].as_array().unwrap().len(), 4);
    assert_eq!(detail["edges"].as_array().unwrap().len(), 4);

    // A step by name, then by id, and its history.
    let res = s
        .get(&format!("/v1/tasks/{id}/steps/start"))
        .send()
        .await
        .unwrap();
    let step: Value = res.json().await.unwrap();
    assert_eq!(step["state"], "enqueued");
    let sid = step["id"].as_str().unwrap();
    let res = s
        .get(&format!("/v1/tasks/{id}/steps/{sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "start");
    let res = s
        .get(&format!("/v1/tasks/{id}/steps/start/transitions"))
        .send()
        .await
        .unwrap();
    let history: Vec<Value> = res.json().await.unwrap();
    let to: Vec<&str> = history
        .iter()
        .map(|t| t["to_state"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["pending", "enqueued"]);
    let res = s
        .get(&format!("/v1/tasks/{id}/steps/nope"))
        .send()
        .await
        .unwrap();
    error(res, StatusCode::NOT_FOUND).await;

    // Unknown task, unknown template, input rejected by the schema.
    let res = s
        .get("/v1/tasks/0190b3c4-0000-7000-8000-000000000000")
        .send()
        .await
        .unwrap();
    error(res, StatusCode::NOT_FOUND).await;
    let res = s
        .post("/v1/tasks")
        .json(&json!({"namespace": "demo", "name": "nope"}))
        .send()
        .await
        .unwrap();
    error(res, StatusCode::NOT_FOUND).await;
    let res = s
        .post("/v1/tasks")
        .json(&json!({"namespace": "demo", "name": "diamond", "context": {"value": "x"}}))
        .send()
        .await
        .unwrap();
    error(res, StatusCode::UNPROCESSABLE_ENTITY).await;

    // Steps move on via operator actions: resolve start, complete left.
    let res = s
        .post(&format!("/v1/tasks/{id}/steps/start/resolve"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    let res = s
        .post(&format!("/v1/tasks/{id}/steps/left/complete"))
        .json(&json!({"result": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    // Retrying a step that has not failed conflicts.
    let res = s
        .post(&format!("/v1/tasks/{id}/steps/right/retry"))
        .send()
        .await
        .unwrap();
    error(res, StatusCode::CONFLICT).await;
}

#[sqlx::test(migrations = false)]
async fn list_with_cursor_pagination(pool: PgPool) {
    let s = Server::start(&pool).await;
    s.register_diamond().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        let (status, body) = s.create(None).await;
        assert_eq!(status, StatusCode::CREATED);
        created.push(body["task_id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = "/v1/tasks?limit=2&namespace=demo&template=diamond".to_string();
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let res = s.get(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let page: Value = res.json().await.unwrap();
        pages += 1;
        for t in page["tasks"].as_array().unwrap() {
            seen.push(t["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        5,
        "no duplicates"
    );
    created.reverse();
    assert_eq!(seen, created, "newest first");

    let res = s
        .get("/v1/tasks?state=steps_in_process")
        .send()
        .await
        .unwrap();
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["tasks"].as_array().unwrap().len(), 5);
    let res = s.get("/v1/tasks?state=complete").send().await.unwrap();
    let page: Value = res.json().await.unwrap();
    assert!(page["tasks"].as_array().unwrap().is_empty());
    // Bad filters name the parameter.
    let res = s.get("/v1/tasks?limit=501").send().await.unwrap();
    let body = error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(body["message"].as_str().unwrap().contains("limit"));
    let res = s.get("/v1/tasks?state=bogus").send().await.unwrap();
    let body = error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(body["message"].as_str().unwrap().contains("state"));
    let res = s.get("/v1/tasks?cursor=not-a-uuid").send().await.unwrap();
    let body = error(res, StatusCode::BAD_REQUEST).await;
    assert!(
        body["message"].as_str().unwrap().contains("cursor"),
        "{body}"
    );
}

#[sqlx::test(migrations = false)]
async fn templates_register_validate_conflict(pool: PgPool) {
    let s = Server::start(&pool).await;
    let res = s
        .post("/v1/templates")
        .header("content-type", "application/yaml")
        .body(DIAMOND)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["key"], "demo/diamond/1.0.0");
    // Identical again: 200, not created.
    let res = s
        .post("/v1/templates")
        .header("content-type", "text/yaml")
        .body(DIAMOND)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Same version, different body: 409.
    let changed = DIAMOND.replace(
        "op: square } }\n  - name: left",
        "op: cube } }\n  - name: left",
    );
    assert_ne!(changed, DIAMOND);
    let res = s
        .post("/v1/templates")
        .header("content-type", "application/yaml")
        .body(changed)
        .send()
        .await
        .unwrap();
    error(res, StatusCode::CONFLICT).await;
    // A cycle: 422 naming the path.
    let cycle = json!({
        "namespace": "demo", "name": "loop", "version": "1.0.0",
        "steps": [
            {"name": "a", "handler": {"name": "h"}, "depends_on": ["b"]},
            {"name": "b", "handler": {"name": "h"}, "depends_on": ["a"]}
        ]
    });
    let res = s.post("/v1/templates").json(&cycle).send().await.unwrap();
    let body = error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("cycle") && msg.contains("a -> b"), "{msg}");
    // Validate: levels, nothing written.
    let res = s
        .post("/v1/templates/validate")
        .header("content-type", "application/yaml")
        .body(DIAMOND.replace("name: diamond", "name: other"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["levels"][0], json!({"step": "start", "level": 0}));
    assert_eq!(body["levels"][3], json!({"step": "join", "level": 2}));
    let res = s
        .post("/v1/templates/validate")
        .json(&cycle)
        .send()
        .await
        .unwrap();
    error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Listing and getting.
    let res = s.get("/v1/templates").send().await.unwrap();
    let list: Value = res.json().await.unwrap();
    assert_eq!(
        list["templates"].as_array().unwrap().len(),
        1,
        "validate wrote nothing"
    );
    let res = s
        .get("/v1/templates/demo/diamond/1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["steps"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let res = s
        .get("/v1/templates/demo/diamond/9.9.9")
        .send()
        .await
        .unwrap();
    error(res, StatusCode::NOT_FOUND).await;
    // Queues: the namespace queue and the results queue.
    let res = s.get("/v1/queues").send().await.unwrap();
    let q: Value = res.json().await.unwrap();
    let names: Vec<&str> = q["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["steps_demo", "orchestration_results"]);
}

#[sqlx::test(migrations = false)]
async fn bad_input_is_400_or_422_in_the_error_shape(pool: PgPool) {
    let s = Server::start(&pool).await;
    let res = s.get("/v1/tasks/not-a-uuid").send().await.unwrap();
    let body = error(res, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "invalid_path");
    let res = s
        .post("/v1/tasks")
        .json(&json!({"namespace": "demo", "name": "diamond", "colour": "red"}))
        .send()
        .await
        .unwrap();
    let body = error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["message"].as_str().unwrap().contains("colour"),
        "{body}"
    );
    let res = s
        .post("/v1/tasks")
        .json(&json!({"namespace": "demo", "name": "diamond", "priority": "high"}))
        .send()
        .await
        .unwrap();
    let body = error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["message"].as_str().unwrap().contains("priority"),
        "{body}"
    );
    let res = s
        .post("/v1/tasks")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    error(res, StatusCode::BAD_REQUEST).await;
    let res = s
        .post("/v1/tasks/0190b3c4-0000-7000-8000-000000000000/cancel")
        .json(&json!({"why": "x"}))
        .send()
        .await
        .unwrap();
    let body = error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(body["message"].as_str().unwrap().contains("why"), "{body}");
    // Over the body limit.
    let big = "x".repeat(BODY_LIMIT as usize + 1);
    let res = s
        .post("/v1/templates")
        .header("content-type", "application/yaml")
        .body(big)
        .send()
        .await
        .unwrap();
    let body = error(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(body["error"], "payload_too_large");
    // Unknown route and wrong method, same shape.
    let res = s.get("/v1/nope").send().await.unwrap();
    error(res, StatusCode::NOT_FOUND).await;
    let res = s
        .http
        .delete(format!("{}/v1/tasks", s.base))
        .send()
        .await
        .unwrap();
    error(res, StatusCode::METHOD_NOT_ALLOWED).await;
    // A given request id is echoed back.
    let res = s
        .get("/health/live")
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
}

#[sqlx::test(migrations = false)]
async fn auth_401_403_200_and_revocation(pool: PgPool) {
    let mut s = Server::start(&pool).await;
    s.register_diamond().await;
    let res = s
        .http
        .get(format!("{}/v1/tasks", s.base))
        .send()
        .await
        .unwrap();
    error(res, StatusCode::UNAUTHORIZED).await;
    s.key = "tk_0000_nope".into();
    error(
        s.get("/v1/tasks").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let (_, reader) = keys::create_key(
        &pool,
        &keys::KeySpec::new("reader", &[Permission::TasksRead]),
    )
    .await
    .unwrap();
    s.key = reader;
    assert_eq!(
        s.get("/v1/tasks").send().await.unwrap().status(),
        StatusCode::OK
    );
    let res = s
        .post("/v1/tasks")
        .json(&json!({"namespace": "demo", "name": "diamond", "context": {"value": 1}}))
        .send()
        .await
        .unwrap();
    let body = error(res, StatusCode::FORBIDDEN).await;
    assert!(body["message"].as_str().unwrap().contains("tasks:create"));

    let (_, creator) = keys::create_key(
        &pool,
        &keys::KeySpec::new("creator", &[Permission::TasksCreate]),
    )
    .await
    .unwrap();
    s.key = creator;
    let (status, _) = s.create(None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(keys::revoke_key(&pool, "creator").await.unwrap());
    let res = s
        .post("/v1/tasks")
        .json(&json!({"namespace": "demo", "name": "diamond", "context": {"value": 1}}))
        .send()
        .await
        .unwrap();
    error(res, StatusCode::UNAUTHORIZED).await;

    // Public routes need no key.
    s.key = String::new();
    for path in ["/health/live", "/openapi.json", "/docs"] {
        let res = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
}

#[sqlx::test(migrations = false)]
async fn auth_disabled_by_config_lets_requests_through(pool: PgPool) {
    let s = Server::start_with(&pool, false).await;
    let res = s
        .http
        .get(format!("{}/v1/tasks", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[sqlx::test(migrations = false)]
async fn cancel_then_cancel_again_conflicts(pool: PgPool) {
    let s = Server::start(&pool).await;
    s.register_diamond().await;
    let (_, created) = s.create(None).await;
    let id = created["task_id"].as_str().unwrap();
    let res = s
        .post(&format!("/v1/tasks/{id}/cancel"))
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["task_state"],
        "cancelled"
    );
    let res = s
        .post(&format!("/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    error(res, StatusCode::CONFLICT).await;
    let res = s.get(&format!("/v1/tasks/{id}")).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["state"], "cancelled");
}

#[sqlx::test(migrations = false)]
async fn health_and_openapi(pool: PgPool) {
    let s = Server::start(&pool).await;
    let res = s
        .http
        .get(format!("{}/health/live", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = s
        .http
        .get(format!("{}/health/ready", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    let spec: Value = res.json().await.unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for r in api::routes() {
        let method = r.method.as_str().to_lowercase();
        assert!(
            paths.get(r.path).and_then(|p| p.get(&method)).is_some(),
            "{} {} missing from /openapi.json",
            r.method,
            r.path
        );
    }
    // Not ready when the schema is behind.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let res = s
        .http
        .get(format!("{}/health/ready", s.base))
        .send()
        .await
        .unwrap();
    error(res, StatusCode::SERVICE_UNAVAILABLE).await;
}

// ------------------------------------------- events, metrics, analytics, DLQ

/// `(event, data)` pairs of a complete SSE body.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let mut name = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim());
            }
        }
        if !data.is_empty() {
            out.push((name, serde_json::from_str(&data).unwrap()));
        }
    }
    out
}

/// Whether `s` holds something shaped like a UUID (8-4-4-4-12 hex digits).
fn has_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    let groups = [8, 4, 4, 4, 12];
    (0..b.len()).any(|start| {
        let mut i = start;
        for (g, n) in groups.iter().enumerate() {
            if i + n > b.len() || !b[i..i + n].iter().all(u8::is_ascii_hexdigit) {
                return false;
            }
            i += n;
            if g < 4 {
                if b.get(i) != Some(&b'-') {
                    return false;
                }
                i += 1;
            }
        }
        true
    })
}

#[sqlx::test(migrations = false)]
async fn event_stream_metrics_and_analytics_of_a_diamond(pool: PgPool) {
    use std::time::Duration;
    let s = Server::start(&pool).await;
    s.register_diamond().await;
    let since = (chrono::Utc::now() - chrono::TimeDelta::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, created) = s.create(None).await;
    let id = created["task_id"].as_str().unwrap().to_string();

    // Open the stream before anything runs the task.
    let mut res = s
        .get(&format!("/v1/tasks/{id}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // An orchestrator and a worker (example handlers) start running it now.
    let _engine = Stack::builder(&pool).start().await;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = res.chunk().await.unwrap() {
            body.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("the stream closes once the task completes");
    let events = sse_events(&body);
    let states: Vec<&str> = events
        .iter()
        .filter(|(e, _)| e == "state")
        .map(|(_, d)| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.first(), Some(&"steps_in_process"), "{body}");
    assert_eq!(states.last(), Some(&"complete"), "{body}");
    assert_eq!(
        events.last().unwrap().0,
        "state",
        "the final state comes last"
    );
    // Every step's transitions, in order, each ending complete.
    for step in ["start", "left", "right", "join"] {
        let seq: Vec<&str> = events
            .iter()
            .filter(|(e, d)| e == "step" && d["step"] == step)
            .map(|(_, d)| d["state"].as_str().unwrap())
            .collect();
        assert_eq!(seq.last(), Some(&"complete"), "{step}: {seq:?}");
        let pos = |s: &str| seq.iter().position(|x| *x == s);
        assert!(
            pos("in_progress") < pos("complete") && pos("in_progress").is_some(),
            "{step}: {seq:?}"
        );
    }
    let step_at = |name: &str| {
        events
            .iter()
            .position(|(e, d)| e == "step" && d["step"] == name && d["state"] == "complete")
            .unwrap()
    };
    assert!(step_at("start") < step_at("left") && step_at("right") < step_at("join"));

    // A finished task: the current state, then the end.
    let res = s
        .get(&format!("/v1/tasks/{id}/events"))
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    let again = sse_events(&text);
    assert_eq!(again.len(), 1, "{text}");
    assert_eq!(again[0].1["state"], "complete");
    let res = s
        .get("/v1/tasks/0190b3c4-0000-7000-8000-000000000000/events")
        .send()
        .await
        .unwrap();
    error(res, StatusCode::NOT_FOUND).await;

    // Metrics: public, Prometheus text, counters moved, no ids. The
    // database's gauges come from a refresh every 5 s (`metrics::REFRESH`).
    let mut text = String::new();
    for _ in 0..150 {
        let res = s
            .http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        text = res.text().await.unwrap();
        if text.contains("tasker_task_latency_seconds_count")
            && text.contains("tasker_queue_depth{queue=\"steps_demo\"}")
            && text.contains("tasker_workers{runtime=\"rust\",status=\"live\"} 1")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.contains("tasker_steps_processed_total{namespace=\"demo\",handler=\"math.compute\",outcome=\"success\"}"),
        "{text}"
    );
    assert!(
        text.contains("tasker_step_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("tasker_task_latency_seconds_count"), "{text}");
    assert!(
        text.contains("tasker_queue_depth{queue=\"steps_demo\"}"),
        "{text}"
    );
    assert!(text.contains("tasker_channel_capacity{channel="), "{text}");
    assert!(
        text.contains("tasker_workers{runtime=\"rust\",status=\"live\"} 1"),
        "{text}"
    );
    assert!(text.contains("tasker_worker_in_flight{worker="), "{text}");
    assert!(!has_uuid(&text), "no ids in metrics:\n{text}");
    // Parses as Prometheus text: comments, or `name{labels} value` lines.
    let mut steps_ok = 0.0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        assert!(
            !series.contains('{') || series.ends_with('}'),
            "bad labels in {line:?}"
        );
        if series.starts_with("tasker_steps_processed_total{")
            && series.contains("outcome=\"success\"")
        {
            steps_ok += value;
        }
    }
    assert!(
        steps_ok >= 4.0,
        "the diamond's 4 steps were counted: {steps_ok}"
    );
    assert!(has_uuid(&id));

    // Analytics over the window.
    let res = s
        .get(&format!("/v1/analytics?since={since}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let a: Value = res.json().await.unwrap();
    assert_eq!(a["tasks_by_state"], json!({"complete": 1}), "{a}");
    assert_eq!(a["steps_completed"], 4, "{a}");
    assert!(a["steps_per_second"].as_f64().unwrap() > 0.0);
    assert!(a["task_latency_p50_seconds"].as_f64().unwrap() > 0.0, "{a}");
    assert!(
        a["task_latency_p95_seconds"].as_f64().unwrap()
            >= a["task_latency_p50_seconds"].as_f64().unwrap()
    );
    let slow = a["slowest_steps"].as_array().unwrap();
    assert_eq!(slow.len(), 4, "{a}");
    assert_eq!(slow[0]["handler"], "math.compute");
    assert!(
        slow[0]["duration_seconds"].as_f64().unwrap()
            >= slow[3]["duration_seconds"].as_f64().unwrap()
    );
    let res = s.get("/v1/analytics?since=yesterday").send().await.unwrap();
    let body = error(res, StatusCode::BAD_REQUEST).await;
    assert!(
        body["message"].as_str().unwrap().contains("since"),
        "{body}"
    );
    let res = s
        .get("/v1/analytics?since=2999-01-01T00:00:00Z")
        .send()
        .await
        .unwrap();
    error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[sqlx::test(migrations = false)]
async fn dead_letters_list_and_requeue(pool: PgPool) {
    use tasker_store::queue;
    let mut s = Server::start(&pool).await;
    s.register_diamond().await;
    let mut conn = pool.acquire().await.unwrap();
    let body = json!({"step_id": "0190b3c4-0000-7000-8000-000000000001", "task_id": "0190b3c4-0000-7000-8000-000000000002"});
    let msg_id = queue::send(&mut conn, "steps_demo", &body).await.unwrap();
    assert!(queue::archive(&mut conn, "steps_demo", msg_id)
        .await
        .unwrap());
    assert_eq!(
        queue::stats(&mut conn, "steps_demo")
            .await
            .unwrap()
            .queue_length,
        0
    );

    let res = s.get("/v1/queues/steps_demo/archive").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["messages"][0]["msg_id"], msg_id);
    assert_eq!(page["messages"][0]["message"], body);
    assert!(page["next_cursor"].is_null());
    let res = s
        .get("/v1/queues/orchestration_results/archive")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    error(
        s.get("/v1/queues/steps_nope/archive").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let res = s.get("/v1/queues/pg_class/archive").send().await.unwrap();
    let b = error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(b["details"]["field"], "queue", "{b}");
    error(
        s.get("/v1/queues/steps_demo/archive?limit=0")
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let requeue = format!("/v1/queues/steps_demo/archive/{msg_id}/requeue");
    let (_, reader) = keys::create_key(
        &pool,
        &keys::KeySpec::new("reader", &[Permission::TasksRead]),
    )
    .await
    .unwrap();
    s.key = reader;
    error(
        s.post(&requeue).send().await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    // The bootstrap key retired when the first key was created.
    s.key = BOOT.into();
    error(
        s.post(&requeue).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let (_, admin) = keys::create_key(&pool, &keys::KeySpec::new("admin", &[Permission::Admin]))
        .await
        .unwrap();
    s.key = admin;
    let res = s.post(&requeue).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["archived_msg_id"], msg_id);
    assert_eq!(
        queue::stats(&mut conn, "steps_demo")
            .await
            .unwrap()
            .queue_length,
        1
    );
    let got = queue::read(&mut conn, "steps_demo", 30, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message, body);
    assert_eq!(got[0].msg_id, r["msg_id"].as_i64().unwrap());
    let page: Value = s
        .get("/v1/queues/steps_demo/archive")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["messages"].as_array().unwrap().is_empty());
    error(
        s.post(&requeue).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    error(
        s.post("/v1/queues/steps_demo/archive/x/requeue")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

// ---------------------------------------------------------------------------
// The per-route matrix: every route of `api::routes()` gets a happy path, 401
// without a key and 403 with a key lacking its permission (both derived from
// the route table itself), and, where the route has them, bad input (400/422
// naming the field), an unknown id (404) and a conflicting state (409). A
// route added to `api::routes()` without a row in `matrix_case` fails here.
// ---------------------------------------------------------------------------

/// A request body.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    Yaml(String),
    Bytes(Vec<u8>),
}

/// One request: method and concrete path (with a query string if any).
#[derive(Clone)]
struct Req {
    method: String,
    path: String,
    body: Body,
}

fn req(method: &str, path: impl Into<String>) -> Req {
    Req {
        method: method.to_string(),
        path: path.into(),
        body: Body::None,
    }
}

impl Req {
    fn json(mut self, v: Value) -> Req {
        self.body = Body::Json(v);
        self
    }
    fn yaml(mut self, y: impl Into<String>) -> Req {
        self.body = Body::Yaml(y.into());
        self
    }
    fn bytes(mut self, b: Vec<u8>) -> Req {
        self.body = Body::Bytes(b);
        self
    }
}

/// The expectations for one route.
struct Case {
    happy: (Req, StatusCode),
    /// A bad request, its status (400 or 422) and the field it must name.
    bad: Option<(Req, StatusCode, &'static str)>,
    /// A request for an id that does not exist: 404.
    unknown: Option<Req>,
    /// A request against a resource in the wrong state: 409.
    conflict: Option<Req>,
}

/// Resources the matrix works on, made before any case runs.
struct Fixture {
    /// A pending diamond task nothing mutates (reads, 409 on retry).
    task: String,
    /// A cancelled task (409 on cancel, resolve, complete).
    cancelled: String,
    /// A pending task to cancel.
    to_cancel: String,
    /// A task whose `start` step has failed (happy retry).
    failed: String,
    /// A pending task to resolve and complete steps of.
    to_finish: String,
    /// An archived message of `steps_demo`.
    archived_msg: i64,
    /// Step ids of two failed `start` steps in the dead-letter queue: one
    /// to read, one to discard.
    dead: String,
    to_discard: String,
    /// A schedule of `demo/diamond` named `fixture` (read, paused, resumed;
    /// 409 on a second `fixture`), and one to delete.
    schedule: String,
    schedule_to_delete: String,
    /// A task of `demo/gate`, whose root step waits for signal `open` (happy signal).
    gated: String,
}

const NO_SUCH_TASK: &str = "0190b3c4-0000-7000-8000-00000000dead";

fn matrix_case(fx: &Fixture, method: &str, path: &str) -> Case {
    let t = &fx.task;
    let ok = StatusCode::OK;
    let bad_req = StatusCode::BAD_REQUEST;
    let unproc = StatusCode::UNPROCESSABLE_ENTITY;
    match (method, path) {
        ("POST", "/v1/tasks") => Case {
            happy: (
                req("POST", "/v1/tasks")
                    .json(json!({"namespace": "demo", "name": "diamond", "context": {"value": 2}})),
                StatusCode::CREATED,
            ),
            bad: Some((
                req("POST", "/v1/tasks")
                    .json(json!({"namespace": "demo", "name": "diamond", "priority": "high"})),
                unproc,
                "priority",
            )),
            unknown: Some(
                req("POST", "/v1/tasks").json(json!({"namespace": "demo", "name": "nope"})),
            ),
            conflict: None,
        },
        ("POST", "/v1/tasks/batch") => Case {
            happy: (
                req("POST", "/v1/tasks/batch").json(json!({"tasks": [
                    {"namespace": "demo", "name": "diamond", "context": {"value": 2}}]})),
                StatusCode::CREATED,
            ),
            bad: Some((
                req("POST", "/v1/tasks/batch").json(json!({"tasks": []})),
                unproc,
                "tasks",
            )),
            unknown: Some(
                req("POST", "/v1/tasks/batch")
                    .json(json!({"tasks": [{"namespace": "demo", "name": "nope"}]})),
            ),
            conflict: None,
        },
        ("GET", "/v1/tasks") => Case {
            happy: (req("GET", "/v1/tasks?namespace=demo&limit=2"), ok),
            bad: Some((req("GET", "/v1/tasks?limit=0"), unproc, "limit")),
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/tasks/{id}") => Case {
            happy: (req("GET", format!("/v1/tasks/{t}")), ok),
            bad: Some((req("GET", "/v1/tasks/not-a-uuid"), bad_req, "id")),
            unknown: Some(req("GET", format!("/v1/tasks/{NO_SUCH_TASK}"))),
            conflict: None,
        },
        ("GET", "/v1/tasks/{id}/steps") => Case {
            happy: (req("GET", format!("/v1/tasks/{t}/steps")), ok),
            bad: Some((req("GET", "/v1/tasks/not-a-uuid/steps"), bad_req, "id")),
            unknown: Some(req("GET", format!("/v1/tasks/{NO_SUCH_TASK}/steps"))),
            conflict: None,
        },
        ("GET", "/v1/tasks/{id}/events") => Case {
            // A finished task: the stream replays its history and ends.
            happy: (req("GET", format!("/v1/tasks/{}/events", fx.cancelled)), ok),
            bad: Some((req("GET", "/v1/tasks/not-a-uuid/events"), bad_req, "id")),
            unknown: Some(req("GET", format!("/v1/tasks/{NO_SUCH_TASK}/events"))),
            conflict: None,
        },
        ("POST", "/v1/tasks/{id}/cancel") => Case {
            happy: (
                req("POST", format!("/v1/tasks/{}/cancel", fx.to_cancel))
                    .json(json!({"reason": "matrix"})),
                ok,
            ),
            bad: Some((
                req("POST", format!("/v1/tasks/{t}/cancel")).json(json!({"why": "x"})),
                unproc,
                "why",
            )),
            unknown: Some(req("POST", format!("/v1/tasks/{NO_SUCH_TASK}/cancel"))),
            conflict: Some(req("POST", format!("/v1/tasks/{}/cancel", fx.cancelled))),
        },
        ("POST", "/v1/tasks/{id}/signals/{name}") => Case {
            happy: (
                req("POST", format!("/v1/tasks/{}/signals/open", fx.gated))
                    .json(json!({"payload": {"by": "matrix"}})),
                ok,
            ),
            bad: Some((
                req("POST", format!("/v1/tasks/{}/signals/Open-Now", fx.gated)).json(json!({})),
                unproc,
                "name",
            )),
            unknown: Some(
                req("POST", format!("/v1/tasks/{NO_SUCH_TASK}/signals/open")).json(json!({})),
            ),
            conflict: Some(
                req("POST", format!("/v1/tasks/{}/signals/open", fx.cancelled)).json(json!({})),
            ),
        },
        ("GET", "/v1/tasks/{id}/steps/{step}") => Case {
            happy: (req("GET", format!("/v1/tasks/{t}/steps/start")), ok),
            bad: Some((
                req("GET", "/v1/tasks/not-a-uuid/steps/start"),
                bad_req,
                "id",
            )),
            unknown: Some(req("GET", format!("/v1/tasks/{t}/steps/nope"))),
            conflict: None,
        },
        ("GET", "/v1/tasks/{id}/steps/{step}/transitions") => Case {
            happy: (
                req(
                    "GET",
                    format!("/v1/tasks/{}/steps/start/transitions", fx.cancelled),
                ),
                ok,
            ),
            bad: Some((
                req("GET", format!("/v1/tasks/{t}/steps/a%00b/transitions")),
                bad_req,
                "step",
            )),
            unknown: Some(req(
                "GET",
                format!("/v1/tasks/{NO_SUCH_TASK}/steps/start/transitions"),
            )),
            conflict: None,
        },
        ("GET", "/v1/tasks/{id}/steps/{step}/logs") => Case {
            happy: (req("GET", format!("/v1/tasks/{t}/steps/start/logs")), ok),
            bad: Some((
                req("GET", "/v1/tasks/not-a-uuid/steps/start/logs"),
                bad_req,
                "id",
            )),
            unknown: Some(req("GET", format!("/v1/tasks/{t}/steps/nope/logs"))),
            conflict: None,
        },
        ("POST", "/v1/tasks/{id}/steps/{step}/retry") => Case {
            happy: (
                req("POST", format!("/v1/tasks/{}/steps/start/retry", fx.failed)),
                ok,
            ),
            bad: Some((
                req("POST", format!("/v1/tasks/{}/steps/start/retry", fx.failed))
                    .json(json!({"reason": 7})),
                unproc,
                "reason",
            )),
            unknown: Some(req("POST", format!("/v1/tasks/{t}/steps/nope/retry"))),
            // A pending step has not failed.
            conflict: Some(req("POST", format!("/v1/tasks/{t}/steps/join/retry"))),
        },
        ("POST", "/v1/tasks/{id}/steps/{step}/resolve") => Case {
            happy: (
                req(
                    "POST",
                    format!("/v1/tasks/{}/steps/start/resolve", fx.to_finish),
                )
                .json(json!({"reason": "by hand"})),
                ok,
            ),
            bad: Some((
                req("POST", format!("/v1/tasks/{t}/steps/start/resolve"))
                    .json(json!({"reason": "nul \u{0}"})),
                unproc,
                "reason",
            )),
            unknown: Some(req(
                "POST",
                format!("/v1/tasks/{NO_SUCH_TASK}/steps/start/resolve"),
            )),
            conflict: Some(req(
                "POST",
                format!("/v1/tasks/{}/steps/start/resolve", fx.cancelled),
            )),
        },
        ("POST", "/v1/tasks/{id}/steps/{step}/complete") => Case {
            happy: (
                req(
                    "POST",
                    format!("/v1/tasks/{}/steps/left/complete", fx.to_finish),
                )
                .json(json!({"result": {"value": 10}})),
                ok,
            ),
            bad: Some((
                req("POST", format!("/v1/tasks/{t}/steps/left/complete"))
                    .json(json!({"reason": "no result"})),
                unproc,
                "result",
            )),
            unknown: Some(
                req("POST", format!("/v1/tasks/{t}/steps/nope/complete"))
                    .json(json!({"result": {}})),
            ),
            conflict: Some(
                req(
                    "POST",
                    format!("/v1/tasks/{}/steps/left/complete", fx.cancelled),
                )
                .json(json!({"result": {}})),
            ),
        },
        ("POST", "/v1/templates") => Case {
            happy: (
                req("POST", "/v1/templates")
                    .yaml(DIAMOND.replace("version: 1.0.0", "version: 2.0.0")),
                StatusCode::CREATED,
            ),
            bad: Some((
                req("POST", "/v1/templates")
                    .yaml(DIAMOND.replace("depends_on: [start]", "depends_on: [ghost]")),
                unproc,
                "ghost",
            )),
            unknown: None,
            // Same version, different definition.
            conflict: Some(
                req("POST", "/v1/templates").yaml(DIAMOND.replace("fans out", "spreads out")),
            ),
        },
        ("GET", "/v1/templates") => Case {
            happy: (req("GET", "/v1/templates"), ok),
            bad: None,
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/templates/{namespace}/{name}/{version}") => Case {
            happy: (req("GET", "/v1/templates/demo/diamond/1.0.0"), ok),
            bad: Some((
                req("GET", "/v1/templates/demo/dia%00mond/latest"),
                bad_req,
                "name",
            )),
            unknown: Some(req("GET", "/v1/templates/demo/nope/latest")),
            conflict: None,
        },
        ("POST", "/v1/templates/validate") => Case {
            happy: (req("POST", "/v1/templates/validate").yaml(DIAMOND), ok),
            bad: Some((
                req("POST", "/v1/templates/validate")
                    .yaml(DIAMOND.replace("depends_on: [start]", "depends_on: [ghost]")),
                unproc,
                "ghost",
            )),
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/queues") => Case {
            happy: (req("GET", "/v1/queues"), ok),
            bad: None,
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/dlq") => Case {
            happy: (req("GET", "/v1/dlq?namespace=demo&limit=10"), ok),
            bad: Some((req("GET", "/v1/dlq?limit=0"), unproc, "limit")),
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/dlq/{step_id}") => Case {
            happy: (req("GET", format!("/v1/dlq/{}", fx.dead)), ok),
            bad: Some((req("GET", "/v1/dlq/not-a-uuid"), bad_req, "step_id")),
            unknown: Some(req("GET", format!("/v1/dlq/{NO_SUCH_TASK}"))),
            conflict: None,
        },
        ("POST", "/v1/dlq/{step_id}/discard") => Case {
            happy: (
                req("POST", format!("/v1/dlq/{}/discard", fx.to_discard)),
                ok,
            ),
            bad: Some((
                req("POST", format!("/v1/dlq/{}/discard", fx.to_discard))
                    .json(json!({"reason": 7})),
                unproc,
                "reason",
            )),
            unknown: Some(req("POST", format!("/v1/dlq/{NO_SUCH_TASK}/discard"))),
            conflict: None,
        },
        ("GET", "/v1/workers") => Case {
            happy: (req("GET", "/v1/workers?all=true"), ok),
            bad: Some((req("GET", "/v1/workers?all=maybe"), bad_req, "all")),
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/queues/{queue}/archive") => Case {
            happy: (req("GET", "/v1/queues/steps_demo/archive?limit=10"), ok),
            bad: Some((
                req("GET", "/v1/queues/steps_demo/archive?limit=0"),
                unproc,
                "limit",
            )),
            unknown: Some(req("GET", "/v1/queues/steps_nope/archive")),
            conflict: None,
        },
        ("POST", "/v1/queues/{queue}/archive/{msg_id}/requeue") => Case {
            happy: (
                req(
                    "POST",
                    format!("/v1/queues/steps_demo/archive/{}/requeue", fx.archived_msg),
                ),
                ok,
            ),
            bad: Some((
                req("POST", "/v1/queues/steps_demo/archive/x/requeue"),
                bad_req,
                "msg_id",
            )),
            unknown: Some(req("POST", "/v1/queues/steps_demo/archive/999999/requeue")),
            conflict: None,
        },
        ("GET", "/v1/analytics") => Case {
            happy: (req("GET", "/v1/analytics"), ok),
            bad: Some((
                req("GET", "/v1/analytics?since=3000-01-01T00:00:00Z"),
                unproc,
                "since",
            )),
            unknown: None,
            conflict: None,
        },
        // A dry run: the fixture's tasks are young, nothing would go.
        ("POST", "/v1/retention/run") => Case {
            happy: (
                req("POST", "/v1/retention/run").json(json!({"dry_run": true})),
                ok,
            ),
            bad: Some((
                req("POST", "/v1/retention/run").json(json!({"dry_run": "yes"})),
                unproc,
                "dry_run",
            )),
            unknown: None,
            conflict: None,
        },
        // WASM components, in route order: upload, list, read, delete.
        ("PUT", "/v1/components/{name}/{version}") => Case {
            happy: (
                req("PUT", "/v1/components/noop-h/1.0.0").bytes(wasm_guest("noop_rust.wasm")),
                StatusCode::CREATED,
            ),
            bad: Some((
                req("PUT", "/v1/components/noop-h/1.0").bytes(wasm_guest("noop_rust.wasm")),
                unproc,
                "version",
            )),
            unknown: None,
            // Same version, other bytes.
            conflict: Some(
                req("PUT", "/v1/components/noop-h/1.0.0").bytes(wasm_guest("math_rust.wasm")),
            ),
        },
        ("GET", "/v1/components") => Case {
            happy: (req("GET", "/v1/components"), ok),
            bad: None,
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/components/{name}/{version}") => Case {
            happy: (req("GET", "/v1/components/noop-h/latest"), ok),
            bad: Some((req("GET", "/v1/components/No_Such/1.0.0"), unproc, "name")),
            unknown: Some(req("GET", "/v1/components/nope/1.0.0")),
            conflict: None,
        },
        ("DELETE", "/v1/components/{name}/{version}") => Case {
            happy: (
                req("DELETE", "/v1/components/noop-h/1.0.0"),
                StatusCode::NO_CONTENT,
            ),
            bad: Some((req("DELETE", "/v1/components/noop-h/x"), unproc, "version")),
            unknown: Some(req("DELETE", "/v1/components/nope/1.0.0")),
            conflict: None,
        },
        ("GET", "/metrics") | ("GET", "/health/live") | ("GET", "/health/ready") => Case {
            happy: (req("GET", path), ok),
            bad: None,
            unknown: None,
            conflict: None,
        },
        // Schedules, in route order: create, list, read, pause, resume, delete.
        ("POST", "/v1/schedules") => {
            let body = |name: &str, cron: &str| {
                json!({"name": name, "namespace": "demo", "template": "diamond",
                       "cron": cron, "timezone": "Europe/Paris", "context": {"value": 2}})
            };
            Case {
                happy: (
                    req("POST", "/v1/schedules").json(body("hourly", "0 * * * *")),
                    StatusCode::CREATED,
                ),
                bad: Some((
                    req("POST", "/v1/schedules").json(body("broken", "every hour")),
                    unproc,
                    "cron",
                )),
                unknown: None,
                conflict: Some(req("POST", "/v1/schedules").json(body("fixture", "0 * * * *"))),
            }
        }
        ("POST", "/v1/tasks/{id}/pause") | ("POST", "/v1/tasks/{id}/resume") => {
            let action = path.rsplit('/').next().unwrap_or_default();
            Case {
                happy: (req("POST", format!("/v1/tasks/{t}/{action}")), ok),
                bad: Some((
                    req("POST", format!("/v1/tasks/not-a-uuid/{action}")),
                    bad_req,
                    "id",
                )),
                unknown: Some(req("POST", format!("/v1/tasks/{NO_SUCH_TASK}/{action}"))),
                conflict: None,
            }
        }
        ("POST", "/v1/templates/{namespace}/{name}/pause") => Case {
            happy: (
                req("POST", "/v1/templates/demo/diamond/pause?reason=matrix"),
                ok,
            ),
            bad: Some((
                req(
                    "POST",
                    format!(
                        "/v1/templates/demo/diamond/pause?reason={}",
                        "x".repeat(1001)
                    ),
                ),
                unproc,
                "reason",
            )),
            unknown: Some(req("POST", "/v1/templates/demo/nothing/pause")),
            conflict: None,
        },
        ("POST", "/v1/templates/{namespace}/{name}/resume") => Case {
            happy: (req("POST", "/v1/templates/demo/diamond/resume"), ok),
            bad: None,
            unknown: Some(req("POST", "/v1/templates/demo/nothing/resume")),
            conflict: None,
        },
        ("POST", "/v1/namespaces/{namespace}/pause") => Case {
            happy: (req("POST", "/v1/namespaces/demo/pause"), ok),
            bad: Some((
                req("POST", "/v1/namespaces/demo/pause?bogus=1"),
                bad_req,
                "bogus",
            )),
            unknown: Some(req("POST", "/v1/namespaces/nowhere/pause")),
            conflict: None,
        },
        ("POST", "/v1/namespaces/{namespace}/resume") => Case {
            happy: (req("POST", "/v1/namespaces/demo/resume"), ok),
            bad: None,
            unknown: Some(req("POST", "/v1/namespaces/nowhere/resume")),
            conflict: None,
        },
        ("GET", "/v1/pauses") => Case {
            happy: (req("GET", "/v1/pauses?namespace=demo"), ok),
            bad: Some((req("GET", "/v1/pauses?bogus=1"), bad_req, "bogus")),
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/schedules") => Case {
            happy: (req("GET", "/v1/schedules?namespace=demo&limit=2"), ok),
            bad: Some((req("GET", "/v1/schedules?limit=0"), unproc, "limit")),
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/schedules/{schedule_id}") => Case {
            happy: (req("GET", format!("/v1/schedules/{}", fx.schedule)), ok),
            bad: Some((
                req("GET", "/v1/schedules/not-a-uuid"),
                bad_req,
                "schedule_id",
            )),
            unknown: Some(req("GET", format!("/v1/schedules/{NO_SUCH_TASK}"))),
            conflict: None,
        },
        ("POST", "/v1/schedules/{schedule_id}/pause")
        | ("POST", "/v1/schedules/{schedule_id}/resume") => {
            let action = path.rsplit('/').next().unwrap_or_default();
            Case {
                happy: (
                    req("POST", format!("/v1/schedules/{}/{action}", fx.schedule)),
                    ok,
                ),
                bad: Some((
                    req("POST", format!("/v1/schedules/not-a-uuid/{action}")),
                    bad_req,
                    "schedule_id",
                )),
                unknown: Some(req(
                    "POST",
                    format!("/v1/schedules/{NO_SUCH_TASK}/{action}"),
                )),
                conflict: None,
            }
        }
        ("DELETE", "/v1/schedules/{schedule_id}") => Case {
            happy: (
                req("DELETE", format!("/v1/schedules/{}", fx.schedule_to_delete)),
                StatusCode::NO_CONTENT,
            ),
            bad: Some((
                req("DELETE", "/v1/schedules/not-a-uuid"),
                bad_req,
                "schedule_id",
            )),
            unknown: Some(req("DELETE", format!("/v1/schedules/{NO_SUCH_TASK}"))),
            conflict: None,
        },
        // Rate limits, in route order: set, list, read, delete.
        ("PUT", "/v1/limits/{name}") => Case {
            happy: (
                req("PUT", "/v1/limits/matrix").json(json!({"per_second": 10.0, "burst": 2})),
                ok,
            ),
            bad: Some((
                req("PUT", "/v1/limits/matrix").json(json!({"per_second": 0})),
                unproc,
                "per_second",
            )),
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/limits") => Case {
            happy: (req("GET", "/v1/limits"), ok),
            bad: None,
            unknown: None,
            conflict: None,
        },
        ("GET", "/v1/limits/{name}") => Case {
            happy: (req("GET", "/v1/limits/matrix"), ok),
            bad: Some((req("GET", "/v1/limits/Bad-Name"), unproc, "name")),
            unknown: Some(req("GET", "/v1/limits/nothing")),
            conflict: None,
        },
        ("DELETE", "/v1/limits/{name}") => Case {
            happy: (req("DELETE", "/v1/limits/matrix"), StatusCode::NO_CONTENT),
            bad: Some((req("DELETE", "/v1/limits/Bad-Name"), unproc, "name")),
            unknown: Some(req("DELETE", "/v1/limits/nothing")),
            conflict: None,
        },
        _ => panic!(
            "route {method} {path} has no row in the API test matrix (engine/api/tests/suite/api.rs, \
             matrix_case): add its happy path, bad input, unknown id and conflict cases"
        ),
    }
}

impl Server {
    fn send_req(&self, r: &Req, key: Option<&str>) -> RequestBuilder {
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
        let mut b = self
            .http
            .request(method, format!("{}{}", self.base, r.path));
        if let Some(k) = key {
            b = b.bearer_auth(k);
        }
        match &r.body {
            Body::None => b,
            Body::Json(v) => b.json(v),
            Body::Yaml(y) => b.header("content-type", "application/yaml").body(y.clone()),
            Body::Bytes(v) => b.header("content-type", "application/wasm").body(v.clone()),
        }
    }

    async fn fixture(&self, pool: &PgPool) -> Fixture {
        self.register_diamond().await;
        let mut ids = Vec::new();
        for _ in 0..7 {
            let (status, body) = self.create(None).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            ids.push(body["task_id"].as_str().unwrap().to_string());
        }
        let res = self
            .post(&format!("/v1/tasks/{}/cancel", ids[1]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // Failed steps without running a handler: set the state directly.
        let mut dead = Vec::new();
        for id in [&ids[3], &ids[5], &ids[6]] {
            let step: uuid::Uuid = sqlx::query_scalar(
                "UPDATE tasker.steps SET state = 'error' WHERE task_id = $1 AND name = 'start'
                 RETURNING id",
            )
            .bind(uuid::Uuid::parse_str(id).unwrap())
            .fetch_one(pool)
            .await
            .unwrap();
            dead.push(step.to_string());
        }
        let mut conn = pool.acquire().await.unwrap();
        let msg = json!({"step_id": NO_SUCH_TASK, "task_id": NO_SUCH_TASK});
        let archived_msg = tasker_store::queue::send(&mut conn, "steps_demo", &msg)
            .await
            .unwrap();
        assert!(
            tasker_store::queue::archive(&mut conn, "steps_demo", archived_msg)
                .await
                .unwrap()
        );
        let mut schedules = Vec::new();
        for name in ["fixture", "doomed"] {
            let res = self
                .post("/v1/schedules")
                .json(
                    &json!({"name": name, "namespace": "demo", "template": "diamond",
                              "cron": "0 0 1 1 *", "context": {"value": 2}}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            let body: Value = res.json().await.unwrap();
            schedules.push(body["id"].as_str().unwrap().to_string());
        }
        let gated = self.create_gated().await;
        Fixture {
            gated,
            schedule: schedules[0].clone(),
            schedule_to_delete: schedules[1].clone(),
            task: ids[0].clone(),
            cancelled: ids[1].clone(),
            to_cancel: ids[2].clone(),
            failed: ids[3].clone(),
            to_finish: ids[4].clone(),
            archived_msg,
            dead: dead[1].clone(),
            to_discard: dead[2].clone(),
        }
    }
}

/// Substitutes a route's path parameters with values that exist, for the
/// auth checks (which run before the handler looks at them).
fn concrete(fx: &Fixture, path: &str) -> String {
    path.replace("{id}", &fx.task)
        .replace("{step}", "start")
        .replace("{namespace}", "demo")
        .replace("{name}", "diamond")
        .replace("{version}", "latest")
        .replace("{queue}", "steps_demo")
        .replace("{msg_id}", "1")
        .replace("{schedule_id}", &fx.schedule)
}

/// Asserts `status` and the error shape, and that the error names `field`
/// (in `details.field` or the message).
async fn expect_error(res: Response, status: StatusCode, field: &str, what: &str) {
    assert_eq!(res.status(), status, "{what}");
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].is_string(), "{what}: error shape: {body}");
    assert!(
        body["details"]["field"].as_str() == Some(field)
            || names_word(body["message"].as_str().unwrap_or(""), field),
        "{what}: the error should name `{field}`: {body}"
    );
}

/// True when `word` occurs in `text` not as part of a longer identifier
/// (`id` is not named by "a `Uuid`").
fn names_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(ident)
            && !text[i + word.len()..].chars().next().is_some_and(ident)
    })
}

#[sqlx::test(migrations = false)]
async fn every_route_happy_401_403_bad_input_404_409(pool: PgPool) {
    let s = Server::start(&pool).await;
    let fx = s.fixture(&pool).await;
    let routes = api::routes();
    let mut counts = [0usize; 6];
    // Every route below runs with an admin key: the bootstrap key retires
    // with the first key the loop creates.
    let (_, admin) = keys::create_key(
        &pool,
        &keys::KeySpec::new("matrix-admin", &[Permission::Admin]),
    )
    .await
    .unwrap();
    // Every permission but admin, limited to a namespace the fixture does not use.
    let elsewhere_spec = keys::KeySpec {
        namespaces: Some(vec!["elsewhere".into()]),
        ..keys::KeySpec::new(
            "elsewhere",
            &Permission::ALL
                .iter()
                .copied()
                .filter(|&p| p != Permission::Admin)
                .collect::<Vec<_>>(),
        )
    };
    let (_, elsewhere) = keys::create_key(&pool, &elsewhere_spec).await.unwrap();
    for r in &routes {
        let method = r.method.as_str();
        let what = format!("{method} {}", r.path);
        let case = matrix_case(&fx, method, r.path);

        // 401 and 403, from the route table.
        if let Some(needed) = r.permission {
            let any = req(method, concrete(&fx, r.path));
            let res = s.send_req(&any, None).send().await.unwrap();
            expect_error(res, StatusCode::UNAUTHORIZED, "Authorization", &what).await;
            let others: Vec<Permission> = Permission::ALL
                .iter()
                .copied()
                .filter(|&p| p != needed && p != Permission::Admin)
                .collect();
            let name = format!("without-{}", needed.as_str().replace(':', "-"));
            let (_, key) = match keys::create_key(&pool, &keys::KeySpec::new(&name, &others)).await
            {
                Ok(k) => k,
                Err(_) => {
                    // Same permission as an earlier route: reuse by a fresh name.
                    keys::create_key(
                        &pool,
                        &keys::KeySpec::new(&format!("{name}-{}", counts[2]), &others),
                    )
                    .await
                    .unwrap()
                }
            };
            let res = s.send_req(&any, Some(&key)).send().await.unwrap();
            expect_error(res, StatusCode::FORBIDDEN, needed.as_str(), &what).await;
            counts[1] += 1;
            counts[2] += 1;
        }

        // 403 for a key limited to another namespace, before anything changes
        // (the happy path below still finds everything as it was). A listing
        // asks for the fixture's namespace by name.
        if r.permission.is_some() && r.scope != api::scope::Scope::Any {
            let (happy, _) = &case.happy;
            let mut outside = happy.clone();
            if method == "GET"
                && r.scope == api::scope::Scope::Handler
                && !outside.path.contains("namespace=")
            {
                let sep = if outside.path.contains('?') { '&' } else { '?' };
                outside.path = format!("{}{sep}namespace=demo", outside.path);
            }
            let res = s.send_req(&outside, Some(&elsewhere)).send().await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "{what} with a key limited to `elsewhere`"
            );
            if method == "GET" && r.scope == api::scope::Scope::Handler {
                // Unfiltered, the listing shows nothing of `demo`.
                let mut unfiltered = happy.clone();
                unfiltered.path = unfiltered
                    .path
                    .replace("namespace=demo&", "")
                    .replace("?namespace=demo", "");
                let res = s
                    .send_req(&unfiltered, Some(&elsewhere))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::OK, "{what}");
                let text = res.text().await.unwrap();
                assert!(
                    !text.contains("\"demo\""),
                    "{what} shows `demo` to a key limited to `elsewhere`: {text}"
                );
            }
        }

        // Happy path.
        let (happy, status) = &case.happy;
        let res = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            s.send_req(happy, Some(&admin)).send(),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: happy path timed out"))
        .unwrap();
        let got = res.status();
        let is_sse = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if !is_sse {
            let text = res.text().await.unwrap();
            assert_eq!(got, *status, "{what}: happy path: {text}");
        } else {
            assert_eq!(got, *status, "{what}: happy path");
        }
        counts[0] += 1;

        if let Some((bad, status, field)) = &case.bad {
            assert!(
                *status == StatusCode::BAD_REQUEST || *status == StatusCode::UNPROCESSABLE_ENTITY
            );
            let res = s.send_req(bad, Some(&admin)).send().await.unwrap();
            expect_error(res, *status, field, &format!("{what}: bad input")).await;
            counts[3] += 1;
        }
        if let Some(unknown) = &case.unknown {
            let res = s.send_req(unknown, Some(&admin)).send().await.unwrap();
            error(res, StatusCode::NOT_FOUND).await;
            counts[4] += 1;
        }
        if let Some(conflict) = &case.conflict {
            let res = s.send_req(conflict, Some(&admin)).send().await.unwrap();
            let body = error(res, StatusCode::CONFLICT).await;
            assert!(body["message"].is_string(), "{what}: {body}");
            counts[5] += 1;
        }
    }
    // Every protected route was checked for 401 and 403.
    let protected = routes.iter().filter(|r| r.permission.is_some()).count();
    assert_eq!(counts[1], protected);
    assert_eq!(counts[0], routes.len());
}
