//! WASM handlers end to end: components uploaded over the HTTP API (the
//! typed client), an orchestrator and a worker with the WASM backend in
//! process, a real PostgreSQL and real wasmtime.
//!
//! Needs the guests from `scripts/build-wasm-examples.sh` in
//! `$CARGO_TARGET_DIR/wasm-examples` (the Rust ones always; the Python and
//! JavaScript ones are used when present, and required when
//! `REQUIRE_WASM_EXAMPLES=1`, as `.ci/run` sets).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;

use tasker_client::{Client, ClientError};
use tasker_model::state::TaskState;
use tasker_model::template::Template;
use tasker_store::task::StepRow;
use tasker_testkit::{
    migrated, optional_wasm_guest as optional_guest, register_inline, wasm_guest as guest, Stack,
};

/// Long enough for a debug build to compile the Python and JS components.
const WAIT: Duration = Duration::from_secs(120);

/// The API (no auth), an orchestrator and one worker running the example
/// handlers and the WASM backend.
async fn start(pool: &PgPool) -> Stack {
    migrated(pool).await;
    Stack::builder(pool)
        .api()
        .wasm()
        .config(|c| {
            c.web.auth.enabled = false;
            // A debug build compiles the Python component in tens of seconds.
            c.web.request_timeout_ms = 600_000;
            c.wasm.max_result_bytes = 1 << 20;
            c.wasm.max_concurrent_calls = 8;
        })
        .worker(|w| {
            w.lease_seconds = 60;
            w.heartbeat_interval = Duration::from_secs(5);
        })
        .wait_timeout(WAIT)
        .start()
        .await
}

/// A client of the stack's API.
fn client(h: &Stack) -> Client {
    Client::new(&h.base_url(), None).unwrap()
}

async fn upload(h: &Stack, name: &str, version: &str, bytes: Vec<u8>) {
    let clock = std::time::Instant::now();
    client(h)
        .upload_component(name, version, bytes)
        .await
        .unwrap_or_else(|e| panic!("upload {name}@{version}: {e}"));
    eprintln!("uploaded {name}@{version} in {:?}", clock.elapsed());
}

async fn register(h: &Stack, yaml: &str) -> Template {
    register_inline(h.pool(), yaml).await
}

/// Creates a task and waits for it to settle.
async fn run(h: &Stack, template: &str, input: Value) -> (TaskState, BTreeMap<String, StepRow>) {
    let id = h.create(template, input).await;
    let state = h.wait(id).await;
    (state, h.steps(id).await)
}

fn value(step: &StepRow) -> &Value {
    &step.result.as_ref().expect("a result")["value"]
}

fn error_of(step: &StepRow) -> (String, String) {
    let e = step.last_error.as_ref().expect("an error");
    (
        e["kind"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[sqlx::test(migrations = false)]
async fn diamond_of_rust_python_and_javascript_components_completes(pool: PgPool) {
    let h = start(&pool).await;
    upload(&h, "math-rust", "1.0.0", guest("math_rust.wasm")).await;
    // Python and JS where built; the Rust component stands in otherwise.
    let (py, js) = (
        optional_guest("math_py.wasm"),
        optional_guest("math_js.wasm"),
    );
    let py_name = match py {
        Some(b) => {
            upload(&h, "math-py", "1.0.0", b).await;
            "math-py"
        }
        None => "math-rust",
    };
    let js_name = match js {
        Some(b) => {
            upload(&h, "math-js", "1.0.0", b).await;
            "math-js"
        }
        None => "math-rust",
    };
    let listed = client(&h).list_components().await.unwrap();
    assert!(listed.components.iter().any(|c| c.name == "math-rust"));
    register(
        &h,
        &format!(
            "namespace: demo\nname: wasm_diamond\nversion: 1.0.0\nsteps:
  - name: start
    handler: {{ name: math-rust, version: 1.0.0, config: {{ op: square }} }}
  - name: left
    handler: {{ name: {py_name}, config: {{ op: add, operand: 1 }} }}
    depends_on: [start]
  - name: right
    handler: {{ name: {js_name}, config: {{ op: multiply, operand: 2 }} }}
    depends_on: [start]
  - name: join
    handler: {{ name: math-rust, config: {{ op: square }} }}
    depends_on: [left, right]
    timeout_seconds: 60
"
        ),
    )
    .await;
    let (state, steps) = run(&h, "wasm_diamond", json!({ "value": 3 })).await;
    assert_eq!(state, TaskState::Complete, "{steps:#?}");
    assert_eq!(value(&steps["start"]), 9);
    assert_eq!(value(&steps["left"]), 10);
    assert_eq!(value(&steps["right"]), 18);
    assert_eq!(value(&steps["join"]), 784);
    let lang = |s: &str| steps[s].result.as_ref().unwrap()["lang"].clone();
    assert_eq!(lang("start"), "rust");
    if py_name == "math-py" {
        assert_eq!(lang("left"), "python");
    }
    if js_name == "math-js" {
        assert_eq!(lang("right"), "javascript");
    }
    h.stop().await;
}

/// A task with a hostile step (`mode`) next to a healthy one, both roots.
/// Returns the hostile step's error kind and message after checking that the
/// healthy step completed, and that the same worker then runs another task.
async fn hostile(h: &Stack, mode: &str, timeout_seconds: u32) -> (String, String) {
    let name = format!("hostile_{mode}");
    register(
        h,
        &format!(
            "namespace: demo\nname: {name}\nversion: 1.0.0\nsteps:
  - name: bad
    handler: {{ name: hostile, config: {{ mode: {mode} }} }}
    retry: {{ max_attempts: 1 }}
    timeout_seconds: {timeout_seconds}
  - name: good
    handler: {{ name: hostile }}
"
        ),
    )
    .await;
    let (state, steps) = run(h, &name, json!({})).await;
    assert_eq!(state, TaskState::BlockedByFailures, "{steps:#?}");
    assert_eq!(steps["bad"].state, "error");
    assert_eq!(steps["good"].state, "complete", "{steps:#?}");
    // The same worker keeps serving.
    let (state, steps) = run(h, "healthy", json!({})).await;
    assert_eq!(state, TaskState::Complete, "{steps:#?}");
    let (state, steps2) = run(h, &name, json!({})).await;
    assert_eq!(state, TaskState::BlockedByFailures);
    assert_eq!(steps2["good"].state, "complete");
    error_of(&steps2["bad"])
}

async fn hostile_stack(pool: &PgPool) -> Stack {
    let h = start(pool).await;
    upload(&h, "hostile", "1.0.0", guest("hostile_rust.wasm")).await;
    register(
        &h,
        "namespace: demo\nname: healthy\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: hostile }\n",
    )
    .await;
    h
}

#[sqlx::test(migrations = false)]
async fn endless_loop_times_out_its_step_only(pool: PgPool) {
    let h = hostile_stack(&pool).await;
    let (kind, message) = hostile(&h, "loop", 1).await;
    assert_eq!(kind, "timeout", "{message}");
    assert!(
        message.contains("deadline") || message.contains("timed out"),
        "{message}"
    );
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn one_gib_allocation_fails_its_step_with_the_memory_limit(pool: PgPool) {
    let h = hostile_stack(&pool).await;
    let (kind, message) = hostile(&h, "alloc", 30).await;
    assert_eq!(kind, "wasm_limit", "{message}");
    assert!(message.contains("memory limit"), "{message}");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn panic_fails_its_step_as_a_trap(pool: PgPool) {
    let h = hostile_stack(&pool).await;
    let (kind, message) = hostile(&h, "panic", 30).await;
    assert_eq!(kind, "wasm_trap", "{message}");
    assert!(message.contains("trapped"), "{message}");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn hundred_mb_result_fails_its_step_with_the_result_cap(pool: PgPool) {
    let h = hostile_stack(&pool).await;
    let (kind, message) = hostile(&h, "big_result", 60).await;
    assert_eq!(kind, "wasm_result_too_large", "{message}");
    assert!(message.contains("more than the cap"), "{message}");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn component_importing_outside_the_contract_is_rejected_at_upload(pool: PgPool) {
    let h = start(&pool).await;
    let err = client(&h)
        .upload_component("sneaky", "1.0.0", guest("bad_import_rust.wasm"))
        .await
        .unwrap_err();
    match &err {
        ClientError::Api {
            status,
            message,
            details,
            ..
        } => {
            assert_eq!(status.as_u16(), 422, "{err}");
            assert!(message.contains("acme:exfil/net"), "{message}");
            assert_eq!(details.as_ref().unwrap()["reason"], "forbidden_import");
        }
        other => panic!("{other}"),
    }
    // Not a component at all: 422 too; nothing stored.
    let err = client(&h)
        .upload_component("junk", "1.0.0", b"\0asm\x01\0\0\0".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422), "{err}");
    assert!(client(&h)
        .list_components()
        .await
        .unwrap()
        .components
        .is_empty());
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn uploads_are_immutable_and_idempotent(pool: PgPool) {
    let h = start(&pool).await;
    let noop = guest("noop_rust.wasm");
    let first = client(&h)
        .upload_component("h", "1.0.0", noop.clone())
        .await
        .unwrap();
    assert!(first.created);
    let again = client(&h)
        .upload_component("h", "1.0.0", noop)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.component.sha256, first.component.sha256);
    let other = client(&h)
        .upload_component("h", "1.0.0", guest("math_rust.wasm"))
        .await
        .unwrap_err();
    assert_eq!(other.status().map(|s| s.as_u16()), Some(409), "{other}");
    let bad = client(&h)
        .upload_component("h", "1.0", guest("noop_rust.wasm"))
        .await
        .unwrap_err();
    assert_eq!(bad.status().map(|s| s.as_u16()), Some(422), "{bad}");
    client(&h).delete_component("h", "1.0.0").await.unwrap();
    let gone = client(&h).delete_component("h", "1.0.0").await.unwrap_err();
    assert_eq!(gone.status().map(|s| s.as_u16()), Some(404), "{gone}");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_new_version_is_used_by_the_next_task_without_a_restart(pool: PgPool) {
    let h = start(&pool).await;
    upload(&h, "calc", "1.0.0", guest("noop_rust.wasm")).await;
    register(
        &h,
        "namespace: demo\nname: calc\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: calc, config: { op: square } }\n",
    )
    .await;
    let (state, steps) = run(&h, "calc", json!({ "value": 5 })).await;
    assert_eq!(state, TaskState::Complete);
    assert_eq!(steps["only"].result, Some(Value::Null));
    upload(&h, "calc", "2.0.0", guest("math_rust.wasm")).await;
    let (state, steps) = run(&h, "calc", json!({ "value": 5 })).await;
    assert_eq!(state, TaskState::Complete, "{steps:#?}");
    assert_eq!(value(&steps["only"]), 25);
    // A template pinning a version keeps it.
    register(
        &h,
        "namespace: demo\nname: pinned\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: calc, version: 1.0.0 }\n",
    )
    .await;
    let (state, steps) = run(&h, "pinned", json!({ "value": 5 })).await;
    assert_eq!(state, TaskState::Complete);
    assert_eq!(steps["only"].result, Some(Value::Null));
    // An unknown handler name is `no_handler`, permanent.
    register(
        &h,
        "namespace: demo\nname: missing\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: nowhere }\n",
    )
    .await;
    let (state, steps) = run(&h, "missing", json!({})).await;
    assert_eq!(state, TaskState::BlockedByFailures);
    let (kind, message) = error_of(&steps["only"]);
    assert_eq!(kind, "no_handler", "{message}");
    h.stop().await;
}
