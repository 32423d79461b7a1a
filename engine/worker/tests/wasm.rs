//! WASM handlers end to end: components uploaded over the HTTP API (the
//! typed client), an orchestrator and a worker with the WASM backend in
//! process, a real PostgreSQL and real wasmtime.
//!
//! Needs the guests from `scripts/build-wasm-examples.sh` in
//! `$CARGO_TARGET_DIR/wasm-examples` (the Rust ones always; the Python,
//! JavaScript and C ones are used when present, and required when
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

/// Connections of the stack's pool: the engine's default
/// `database.max_connections`, not sqlx::test's 5. On 5, two steps of one task
/// failing at once were seen to stall the orchestrator until the pool's
/// acquire timeout (30 s) or for good: a result batch loop holds a connection
/// while `tasker_store::take::take_batch_on` takes a second one from the pool
/// for failed results (`result::process_batch(pool, ..)`); a leader and a
/// helper loop doing that at once, next to the other loops' held
/// connections, can exhaust 5.
const POOL_CONNECTIONS: u32 = 20;

/// A running stack on a pool of its own ([`POOL_CONNECTIONS`]), closed by
/// [`Harness::stop`].
struct Harness {
    stack: Stack,
    pool: PgPool,
}

impl std::ops::Deref for Harness {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.stack
    }
}

impl Harness {
    async fn stop(self) {
        self.stack.stop().await;
        self.pool.close().await;
    }
}

/// The API (no auth), an orchestrator and one worker running the example
/// handlers and the WASM backend, on the test's database.
async fn start(test_pool: &PgPool) -> Harness {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL_CONNECTIONS)
        .connect_with((*test_pool.connect_options()).clone())
        .await
        .expect("a pool on the test database");
    migrated(&pool).await;
    let stack = Stack::builder(&pool)
        .api()
        .wasm()
        .config(|c| {
            c.web.auth.enabled = false;
            // A debug build compiles the Python component in tens of seconds.
            c.web.request_timeout_ms = 600_000;
            c.wasm.max_result_bytes = 1 << 20;
            c.wasm.max_concurrent_calls = 8;
            // A step no worker serves (no such component) ends soon.
            c.orchestration.unserved_step_timeout_seconds = 2;
        })
        .worker(|w| {
            w.lease_seconds = 60;
            w.heartbeat_interval = Duration::from_secs(5);
        })
        .wait_timeout(WAIT)
        .start()
        .await;
    Harness { stack, pool }
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
async fn diamond_of_rust_python_javascript_and_c_components_completes(pool: PgPool) {
    let h = start(&pool).await;
    upload(&h, "math-rust", "1.0.0", guest("math_rust.wasm")).await;
    // Python, JS and C where built; the Rust component stands in otherwise.
    let (py, js, c) = (
        optional_guest("math_py.wasm"),
        optional_guest("math_js.wasm"),
        optional_guest("math_c.wasm"),
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
    let c_name = match c {
        Some(b) => {
            upload(&h, "math-c", "1.0.0", b).await;
            "math-c"
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
    handler: {{ name: {c_name}, config: {{ op: square }} }}
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
    if c_name == "math-c" {
        assert_eq!(lang("join"), "c");
    }
    h.stop().await;
}

/// The root steps of the exact-integer matrix: name and handler config
/// (JSON, which is also YAML).
const MATRIX_STEPS: &[(&str, &str)] = &[
    ("square", r#"{"op": "square"}"#),
    ("add", r#"{"op": "add", "operand": 1}"#),
    ("neg", r#"{"op": "multiply", "operand": -2}"#),
    ("default_operand", r#"{"op": "add"}"#),
    ("float_operand", r#"{"op": "multiply", "operand": 2.5}"#),
    ("unknown", r#"{"op": "cu\"be\n"}"#),
    ("no_op", r#"{"operand": 2}"#),
];

/// Task inputs of the matrix: small values, 64-bit edges, values past
/// 2^53 (inexact as doubles), and inputs that are not 64-bit integers.
const MATRIX_INPUTS: &[&str] = &[
    r#"{"value": 3}"#,
    r#"{"value": -7}"#,
    r#"{"value": 0}"#,
    r#"{"value": 3037000499}"#,
    r#"{"value": 3037000500}"#,
    r#"{"value": 9007199254740993}"#,
    r#"{"value": 4611686018427387904}"#,
    r#"{"value": 9223372036854775807}"#,
    r#"{"value": -9223372036854775808}"#,
    r#"{"value": 9223372036854775808}"#,
    r#"{"value": 3.0}"#,
    r#"{"value": "3"}"#,
    r#"{"other": 1}"#,
];

/// What `math.compute` answers for a root step: the value or the message of
/// its permanent error (examples/wasm/rust/math, with checked i64 arithmetic).
fn math_reference(input: &Value, config: &Value) -> Result<i64, String> {
    let n = input["value"]
        .as_i64()
        .ok_or("input `value` must be an integer")?;
    let operand = config["operand"].as_i64().unwrap_or(1);
    match config["op"].as_str() {
        Some("square") => n.checked_mul(n),
        Some("add") => n.checked_add(operand),
        Some("multiply") => n.checked_mul(operand),
        other => return Err(format!("unknown op {other:?}")),
    }
    .ok_or_else(|| "overflow".to_string())
}

/// A step's outcome: its state, and its result or error (kind, message).
fn outcome(step: &StepRow) -> (String, Option<Value>, Option<(String, String)>) {
    let error = step.last_error.as_ref().map(|_| error_of(step));
    (step.state.clone(), step.result.clone(), error)
}

/// The languages whose math component computes in exact 64-bit integers
/// (Python's ints are unbounded and JavaScript's numbers are doubles: they
/// agree only on small values, which the diamond checks). Each runs the same
/// matrix and must give the reference's values and messages exactly, and the
/// same outcome as the Rust component for every step, children included.
#[sqlx::test(migrations = false)]
async fn math_components_agree_on_64_bit_integers_and_errors(pool: PgPool) {
    let h = start(&pool).await;
    upload(&h, "noop", "1.0.0", guest("noop_rust.wasm")).await;
    let mut langs = vec![("rust", guest("math_rust.wasm"))];
    if let Some(c) = optional_guest("math_c.wasm") {
        langs.push(("c", c));
    }
    for (lang, bytes) in &langs {
        upload(&h, &format!("math-{lang}"), "1.0.0", bytes.clone()).await;
        let mut yaml = format!("namespace: demo\nname: matrix_{lang}\nversion: 1.0.0\nsteps:\n");
        for (step, config) in MATRIX_STEPS {
            yaml += &format!(
                "  - name: {step}\n    handler: {{ name: math-{lang}, config: {config} }}\n"
            );
        }
        // Children: a sum of two parents, and a parent whose result has no
        // integer `value` (a null from the no-op guest, first in key order).
        yaml += &format!(
            "  - name: sum\n    handler: {{ name: math-{lang}, config: {{ op: add, operand: 0 }} }}
    depends_on: [add, neg]
  - name: a_null
    handler: {{ name: noop }}
  - name: null_parent
    handler: {{ name: math-{lang}, config: {{ op: square }} }}
    depends_on: [square, a_null]
"
        );
        register(&h, &yaml).await;
    }
    // Every task of every language at once.
    let mut tasks = Vec::new();
    for (lang, _) in &langs {
        for input in MATRIX_INPUTS {
            let input: Value = serde_json::from_str(input).unwrap();
            let id = h.create(&format!("matrix_{lang}"), input.clone()).await;
            tasks.push((*lang, input, id));
        }
    }
    let mut by_lang: BTreeMap<&str, Vec<BTreeMap<String, StepRow>>> = BTreeMap::new();
    for (lang, input, id) in &tasks {
        let state = h.wait(*id).await;
        let steps = h.steps(*id).await;
        let ctx = format!("{lang} {input}");
        for (step, config) in MATRIX_STEPS {
            let config: Value = serde_json::from_str(config).unwrap();
            let got = &steps[*step];
            match math_reference(input, &config) {
                Ok(v) => {
                    assert_eq!(got.state, "complete", "{ctx} {step}: {got:#?}");
                    assert_eq!(
                        got.result,
                        Some(json!({ "value": v, "lang": lang })),
                        "{ctx} {step}"
                    );
                }
                Err(message) => {
                    assert_eq!(got.state, "error", "{ctx} {step}: {got:#?}");
                    assert_eq!(error_of(got).1, message, "{ctx} {step}");
                }
            }
        }
        let add = math_reference(input, &json!({ "op": "add", "operand": 1 }));
        let neg = math_reference(input, &json!({ "op": "multiply", "operand": -2 }));
        if let (Ok(a), Ok(b)) = (add, neg) {
            let sum = a.checked_add(b).expect("no input makes the sum overflow");
            assert_eq!(value(&steps["sum"]), &json!(sum), "{ctx} sum");
        }
        if math_reference(input, &json!({ "op": "square" })).is_ok() {
            assert_eq!(
                error_of(&steps["null_parent"]).1,
                "parent `a_null` has no integer `value`",
                "{ctx}"
            );
        }
        assert_eq!(state, TaskState::BlockedByFailures, "{ctx}");
        by_lang.entry(lang).or_default().push(steps);
    }
    // Every step of every task ends alike in each language (kinds included).
    let rust = &by_lang["rust"];
    for (lang, runs) in &by_lang {
        for (i, (ours, theirs)) in runs.iter().zip(rust).enumerate() {
            for (name, step) in ours {
                let (state, result, error) = outcome(step);
                let (r_state, r_result, r_error) = outcome(&theirs[name]);
                let ctx = format!("{lang} {} {name}", MATRIX_INPUTS[i]);
                assert_eq!((&state, &error), (&r_state, &r_error), "{ctx}");
                let strip = |v: Option<Value>| {
                    v.map(|mut v| {
                        if let Some(o) = v.as_object_mut() {
                            o.remove("lang");
                        }
                        v
                    })
                };
                assert_eq!(strip(result), strip(r_result), "{ctx}");
            }
        }
    }
    h.stop().await;
}

/// A task with a hostile step (`mode`, of the `lang` hostile guest) next to a
/// healthy one, both roots. Returns the hostile step's error kind and message
/// after checking that the healthy step completed, and that the same worker
/// then runs another task.
async fn hostile(h: &Stack, lang: &str, mode: &str, timeout_seconds: u32) -> (String, String) {
    let name = format!("hostile_{lang}_{mode}");
    register(
        h,
        &format!(
            "namespace: demo\nname: {name}\nversion: 1.0.0\nsteps:
  - name: bad
    handler: {{ name: hostile-{lang}, config: {{ mode: {mode} }} }}
    retry: {{ max_attempts: 1 }}
    timeout_seconds: {timeout_seconds}
  - name: good
    handler: {{ name: hostile-{lang} }}
"
        ),
    )
    .await;
    let (state, steps) = run(h, &name, json!({})).await;
    assert_eq!(state, TaskState::BlockedByFailures, "{lang}: {steps:#?}");
    assert_eq!(steps["bad"].state, "error", "{lang}");
    assert_eq!(steps["good"].state, "complete", "{lang}: {steps:#?}");
    // The same worker keeps serving.
    let (state, steps) = run(h, &format!("healthy_{lang}"), json!({})).await;
    assert_eq!(state, TaskState::Complete, "{lang}: {steps:#?}");
    let (state, steps2) = run(h, &name, json!({})).await;
    assert_eq!(state, TaskState::BlockedByFailures, "{lang}");
    assert_eq!(steps2["good"].state, "complete", "{lang}");
    error_of(&steps2["bad"])
}

/// A stack with the hostile guests uploaded as `hostile-<lang>`: Rust, and C
/// where built. Returns the languages.
async fn hostile_stack(pool: &PgPool) -> (Harness, Vec<&'static str>) {
    let h = start(pool).await;
    let mut langs = vec![("rust", guest("hostile_rust.wasm"))];
    if let Some(c) = optional_guest("hostile_c.wasm") {
        langs.push(("c", c));
    }
    for (lang, bytes) in &langs {
        upload(&h, &format!("hostile-{lang}"), "1.0.0", bytes.clone()).await;
        register(
            &h,
            &format!(
                "namespace: demo\nname: healthy_{lang}\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: {{ name: hostile-{lang} }}\n"
            ),
        )
        .await;
    }
    (h, langs.into_iter().map(|(lang, _)| lang).collect())
}

#[sqlx::test(migrations = false)]
async fn endless_loop_times_out_its_step_only(pool: PgPool) {
    let (h, langs) = hostile_stack(&pool).await;
    for lang in langs {
        let (kind, message) = hostile(&h, lang, "loop", 1).await;
        assert_eq!(kind, "timeout", "{lang}: {message}");
        assert!(
            message.contains("deadline") || message.contains("timed out"),
            "{lang}: {message}"
        );
    }
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn one_gib_allocation_fails_its_step_with_the_memory_limit(pool: PgPool) {
    let (h, langs) = hostile_stack(&pool).await;
    for lang in langs {
        let (kind, message) = hostile(&h, lang, "alloc", 30).await;
        assert_eq!(kind, "wasm_limit", "{lang}: {message}");
        assert!(message.contains("memory limit"), "{lang}: {message}");
    }
    h.stop().await;
}

/// A Rust panic; `abort()` in C.
#[sqlx::test(migrations = false)]
async fn panic_fails_its_step_as_a_trap(pool: PgPool) {
    let (h, langs) = hostile_stack(&pool).await;
    for lang in langs {
        let (kind, message) = hostile(&h, lang, "panic", 30).await;
        assert_eq!(kind, "wasm_trap", "{lang}: {message}");
        assert!(message.contains("trapped"), "{lang}: {message}");
    }
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn hundred_mb_result_fails_its_step_with_the_result_cap(pool: PgPool) {
    let (h, langs) = hostile_stack(&pool).await;
    for lang in langs {
        let (kind, message) = hostile(&h, lang, "big_result", 60).await;
        assert_eq!(kind, "wasm_result_too_large", "{lang}: {message}");
        assert!(message.contains("more than the cap"), "{lang}: {message}");
    }
    h.stop().await;
}

/// What C allows beyond the Rust cases: a store outside linear memory,
/// unbounded recursion and `exit()` mid-call each fail only their step, as a
/// trap.
#[sqlx::test(migrations = false)]
async fn c_out_of_bounds_stack_overflow_and_exit_fail_their_step_as_a_trap(pool: PgPool) {
    let (h, langs) = hostile_stack(&pool).await;
    if !langs.contains(&"c") {
        return h.stop().await;
    }
    for mode in ["oob", "stack", "exit"] {
        let (kind, message) = hostile(&h, "c", mode, 30).await;
        assert_eq!(kind, "wasm_trap", "{mode}: {message}");
    }
    h.stop().await;
}

/// A retryable error with retry-after, and 1 MB of stdout: the same outcome
/// from every hostile guest.
#[sqlx::test(migrations = false)]
async fn retryable_errors_and_printing_end_alike_in_every_language(pool: PgPool) {
    let (h, langs) = hostile_stack(&pool).await;
    register(
        &h,
        &format!(
            "namespace: demo\nname: polite\nversion: 1.0.0\nsteps:\n{}",
            langs
                .iter()
                .map(|lang| format!(
                    "  - name: fail_{lang}
    handler: {{ name: hostile-{lang}, config: {{ mode: fail }} }}
    retry: {{ max_attempts: 2, base_ms: 10 }}
  - name: print_{lang}
    handler: {{ name: hostile-{lang}, config: {{ mode: print }} }}
"
                ))
                .collect::<String>()
        ),
    )
    .await;
    let (state, steps) = run(&h, "polite", json!({})).await;
    assert_eq!(state, TaskState::BlockedByFailures, "{steps:#?}");
    for lang in &langs {
        let fail = &steps[&format!("fail_{lang}")];
        assert_eq!(fail.state, "error", "{lang}: {fail:#?}");
        // Retried once (1.5 s later, as the guest asks).
        assert_eq!(fail.attempts, 2, "{lang}: {fail:#?}");
        assert_eq!(
            error_of(fail),
            error_of(&steps["fail_rust"]),
            "{lang}: {fail:#?}"
        );
        assert_eq!(error_of(fail).1, "asked to fail", "{lang}");
        let print = &steps[&format!("print_{lang}")];
        assert_eq!(print.state, "complete", "{lang}: {print:#?}");
        assert_eq!(print.result, Some(json!("printed")), "{lang}");
    }
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
    // A handler name no worker serves (no such component) ends in
    // `no_worker` after `orchestration.unserved_step_timeout_seconds`.
    register(
        &h,
        "namespace: demo\nname: missing\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: nowhere }\n",
    )
    .await;
    let (state, steps) = run(&h, "missing", json!({})).await;
    assert_eq!(state, TaskState::BlockedByFailures);
    let (kind, message) = error_of(&steps["only"]);
    assert_eq!(kind, "no_worker", "{message}");
    assert!(message.contains("'nowhere'"), "{message}");
    h.stop().await;
}
