//! WASM handlers end to end: components uploaded over the HTTP API (the
//! typed client), an orchestrator and a worker with the WASM backend in
//! process, a real PostgreSQL and real wasmtime.
//!
//! Needs the guests from `scripts/build-wasm-examples.sh` in
//! `$CARGO_TARGET_DIR/wasm-examples` (the Rust ones always; the Python and
//! JavaScript ones are used when present, and required when
//! `REQUIRE_WASM_EXAMPLES=1`, as `.ci/run` sets).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use tasker_client::{Client, ClientError};
use tasker_config::TaskerConfig;
use tasker_worker::handler::{examples, HandlerRegistry};
use tasker_orchestrator::{self as orchestration, Orchestrator, OrchestratorSettings};
use tasker_model::state::TaskState;
use tasker_store::task::{self, NewTask, StepRow};
use tasker_store::template::{self as templates, TemplateCache};
use tasker_model::template::Template;
use tasker_notify::watch::TaskWatcher;
use tasker_worker::{self as worker, WorkerSettings};

/// Long enough for a debug build to compile the Python and JS components.
const WAIT: Duration = Duration::from_secs(120);

fn examples_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("wasm-examples")
}

/// A required guest (the Rust ones).
fn guest(file: &str) -> Vec<u8> {
    let path = examples_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the guests with scripts/build-wasm-examples.sh",
            path.display()
        )
    })
}

/// A guest that may be absent locally (Python, JS); required in CI.
fn optional_guest(file: &str) -> Option<Vec<u8>> {
    let path = examples_dir().join(file);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if std::env::var("REQUIRE_WASM_EXAMPLES").as_deref() == Ok("1") => {
            panic!(
                "{}: {e}; REQUIRE_WASM_EXAMPLES=1 needs every guest (scripts/build-wasm-examples.sh)",
                path.display()
            )
        }
        Err(_) => {
            eprintln!("skipping {file}: not built (scripts/build-wasm-examples.sh builds it)");
            None
        }
    }
}

fn config(cache: &std::path::Path) -> TaskerConfig {
    let mut config = TaskerConfig::default();
    config.web.bind = "127.0.0.1:0".into();
    config.web.auth.enabled = false;
    // A debug build compiles the Python component in tens of seconds.
    config.web.request_timeout_ms = 600_000;
    config.wasm.cache_dir = cache.to_path_buf();
    config.wasm.max_result_bytes = 1 << 20;
    config.wasm.max_concurrent_calls = 8;
    config.orchestration.retry_sweep_interval_ms = 50;
    config.orchestration.fallback_poll_interval_ms = 200;
    config
}

/// The API, an orchestrator and one worker (Rust examples + WASM backend).
struct Harness {
    pool: PgPool,
    client: Client,
    orchestrator: Orchestrator,
    watcher: TaskWatcher,
    shutdown: CancellationToken,
    handles: Vec<JoinHandle<()>>,
    cache: PathBuf,
}

impl Harness {
    async fn start(pool: &PgPool) -> Harness {
        tasker_store::migrate::migrate(pool).await.unwrap();
        let cache = std::env::temp_dir().join(format!("tasker-wasm-test-{}", Uuid::now_v7()));
        let config = config(&cache);
        let shutdown = CancellationToken::new();
        let (addr, _api): (SocketAddr, _) =
            tasker_api::serve(pool.clone(), &config, shutdown.clone())
                .await
                .unwrap();
        let (orchestrator, orch_done) = orchestration::start(
            pool.clone(),
            TemplateCache::default(),
            OrchestratorSettings::from_config(&config),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let registry = HandlerRegistry::new();
        examples::register(&registry);
        tasker_worker::handler::wasm::install(&registry, pool.clone(), &config.wasm)
            .await
            .unwrap();
        let settings = WorkerSettings {
            namespaces: vec!["demo".into()],
            poll_interval: Duration::from_millis(200),
            lease_seconds: 60,
            heartbeat_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(2),
            ..Default::default()
        };
        let (p, s) = (pool.clone(), shutdown.clone());
        let worker = tokio::spawn(async move {
            worker::run(p, Arc::new(registry), settings, s)
                .await
                .unwrap();
        });
        Harness {
            pool: pool.clone(),
            client: Client::new(&format!("http://{addr}"), None).unwrap(),
            orchestrator,
            watcher: TaskWatcher::start(pool).await.unwrap(),
            shutdown,
            handles: vec![worker, orch_done],
            cache,
        }
    }

    async fn upload(&self, name: &str, version: &str, bytes: Vec<u8>) {
        let clock = std::time::Instant::now();
        self.client
            .upload_handler(name, version, bytes)
            .await
            .unwrap_or_else(|e| panic!("upload {name}@{version}: {e}"));
        eprintln!("uploaded {name}@{version} in {:?}", clock.elapsed());
    }

    async fn register(&self, yaml: &str) -> Template {
        let tpl = Template::from_yaml_str(yaml, "<inline>").unwrap();
        templates::register(&self.pool, &tpl).await.unwrap();
        tpl
    }

    /// Creates a task and waits for it to settle.
    async fn run(&self, template: &str, input: Value) -> (TaskState, BTreeMap<String, StepRow>) {
        let id = self
            .orchestrator
            .create_task(NewTask {
                namespace: "demo".into(),
                name: template.into(),
                version: None,
                context: input,
                priority: 0,
                idempotency_key: None,
            })
            .await
            .unwrap()
            .task_id;
        let state = self.watcher.wait(id, WAIT).await.unwrap();
        let steps = task::detail(&self.pool, id)
            .await
            .unwrap()
            .steps
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        (state, steps)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for h in self.handles {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
        let _ = std::fs::remove_dir_all(&self.cache);
    }
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
    let h = Harness::start(&pool).await;
    h.upload("math-rust", "1.0.0", guest("math_rust.wasm"))
        .await;
    // Python and JS where built; the Rust component stands in otherwise.
    let (py, js) = (
        optional_guest("math_py.wasm"),
        optional_guest("math_js.wasm"),
    );
    let py_name = match py {
        Some(b) => {
            h.upload("math-py", "1.0.0", b).await;
            "math-py"
        }
        None => "math-rust",
    };
    let js_name = match js {
        Some(b) => {
            h.upload("math-js", "1.0.0", b).await;
            "math-js"
        }
        None => "math-rust",
    };
    let listed = h.client.list_handlers().await.unwrap();
    assert!(listed.handlers.iter().any(|c| c.name == "math-rust"));
    h.register(&format!(
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
    ))
    .await;
    let (state, steps) = h.run("wasm_diamond", json!({ "value": 3 })).await;
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
async fn hostile(h: &Harness, mode: &str, timeout_seconds: u32) -> (String, String) {
    let name = format!("hostile_{mode}");
    h.register(&format!(
        "namespace: demo\nname: {name}\nversion: 1.0.0\nsteps:
  - name: bad
    handler: {{ name: hostile, config: {{ mode: {mode} }} }}
    retry: {{ max_attempts: 1 }}
    timeout_seconds: {timeout_seconds}
  - name: good
    handler: {{ name: hostile }}
"
    ))
    .await;
    let (state, steps) = h.run(&name, json!({})).await;
    assert_eq!(state, TaskState::BlockedByFailures, "{steps:#?}");
    assert_eq!(steps["bad"].state, "error");
    assert_eq!(steps["good"].state, "complete", "{steps:#?}");
    // The same worker keeps serving.
    let (state, steps) = h.run("healthy", json!({})).await;
    assert_eq!(state, TaskState::Complete, "{steps:#?}");
    let (state, steps2) = h.run(&name, json!({})).await;
    assert_eq!(state, TaskState::BlockedByFailures);
    assert_eq!(steps2["good"].state, "complete");
    error_of(&steps2["bad"])
}

async fn hostile_harness(pool: &PgPool) -> Harness {
    let h = Harness::start(pool).await;
    h.upload("hostile", "1.0.0", guest("hostile_rust.wasm"))
        .await;
    h.register(
        "namespace: demo\nname: healthy\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: hostile }\n",
    )
    .await;
    h
}

#[sqlx::test(migrations = false)]
async fn endless_loop_times_out_its_step_only(pool: PgPool) {
    let h = hostile_harness(&pool).await;
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
    let h = hostile_harness(&pool).await;
    let (kind, message) = hostile(&h, "alloc", 30).await;
    assert_eq!(kind, "wasm_limit", "{message}");
    assert!(message.contains("memory limit"), "{message}");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn panic_fails_its_step_as_a_trap(pool: PgPool) {
    let h = hostile_harness(&pool).await;
    let (kind, message) = hostile(&h, "panic", 30).await;
    assert_eq!(kind, "wasm_trap", "{message}");
    assert!(message.contains("trapped"), "{message}");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn hundred_mb_result_fails_its_step_with_the_result_cap(pool: PgPool) {
    let h = hostile_harness(&pool).await;
    let (kind, message) = hostile(&h, "big_result", 60).await;
    assert_eq!(kind, "wasm_result_too_large", "{message}");
    assert!(message.contains("more than the cap"), "{message}");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn component_importing_outside_the_contract_is_rejected_at_upload(pool: PgPool) {
    let h = Harness::start(&pool).await;
    let err = h
        .client
        .upload_handler("sneaky", "1.0.0", guest("bad_import_rust.wasm"))
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
    let err = h
        .client
        .upload_handler("junk", "1.0.0", b"\0asm\x01\0\0\0".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422), "{err}");
    assert!(h.client.list_handlers().await.unwrap().handlers.is_empty());
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn uploads_are_immutable_and_idempotent(pool: PgPool) {
    let h = Harness::start(&pool).await;
    let noop = guest("noop_rust.wasm");
    let first = h
        .client
        .upload_handler("h", "1.0.0", noop.clone())
        .await
        .unwrap();
    assert!(first.created);
    let again = h.client.upload_handler("h", "1.0.0", noop).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.handler.sha256, first.handler.sha256);
    let other = h
        .client
        .upload_handler("h", "1.0.0", guest("math_rust.wasm"))
        .await
        .unwrap_err();
    assert_eq!(other.status().map(|s| s.as_u16()), Some(409), "{other}");
    let bad = h
        .client
        .upload_handler("h", "1.0", guest("noop_rust.wasm"))
        .await
        .unwrap_err();
    assert_eq!(bad.status().map(|s| s.as_u16()), Some(422), "{bad}");
    h.client.delete_handler("h", "1.0.0").await.unwrap();
    let gone = h.client.delete_handler("h", "1.0.0").await.unwrap_err();
    assert_eq!(gone.status().map(|s| s.as_u16()), Some(404), "{gone}");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_new_version_is_used_by_the_next_task_without_a_restart(pool: PgPool) {
    let h = Harness::start(&pool).await;
    h.upload("calc", "1.0.0", guest("noop_rust.wasm")).await;
    h.register(
        "namespace: demo\nname: calc\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: calc, config: { op: square } }\n",
    )
    .await;
    let (state, steps) = h.run("calc", json!({ "value": 5 })).await;
    assert_eq!(state, TaskState::Complete);
    assert_eq!(steps["only"].result, Some(Value::Null));
    h.upload("calc", "2.0.0", guest("math_rust.wasm")).await;
    let (state, steps) = h.run("calc", json!({ "value": 5 })).await;
    assert_eq!(state, TaskState::Complete, "{steps:#?}");
    assert_eq!(value(&steps["only"]), 25);
    // A template pinning a version keeps it.
    h.register(
        "namespace: demo\nname: pinned\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: calc, version: 1.0.0 }\n",
    )
    .await;
    let (state, steps) = h.run("pinned", json!({ "value": 5 })).await;
    assert_eq!(state, TaskState::Complete);
    assert_eq!(steps["only"].result, Some(Value::Null));
    // An unknown handler name is `no_handler`, permanent.
    h.register(
        "namespace: demo\nname: missing\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: nowhere }\n",
    )
    .await;
    let (state, steps) = h.run("missing", json!({})).await;
    assert_eq!(state, TaskState::BlockedByFailures);
    let (kind, message) = error_of(&steps["only"]);
    assert_eq!(kind, "no_handler", "{message}");
    h.stop().await;
}
