//! tasker's test kit: what the integration tests of the engine crates and the
//! multi-process tests in `tests/` share.
//!
//! * **A database.** Each test gets a fresh database from
//!   `#[sqlx::test(migrations = false)]` and installs PGMQ and the schema with
//!   [`migrated`]. `DATABASE_URL` must name a server where the user may
//!   `CREATE DATABASE`, e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
//! * **Fixtures.** The example templates ([`example`], [`register_example`],
//!   [`DIAMOND_YAML`]), inline templates ([`register_inline`]), the example
//!   handlers ([`registry`]), fast test settings ([`config`],
//!   [`orchestrator_settings`], [`worker_settings`]), task requests
//!   ([`new_task`]) and reads of a task ([`steps`], [`task_state`]).
//! * **One harness.** [`Stack`] runs N orchestrators, M workers and, with the
//!   `api` feature, the HTTP API on one shutdown token; dropping it stops
//!   them, [`Stack::stop`] also waits for them and fails the test if one
//!   failed. With the `wasm` feature its workers run WASM components too.
//! * **Polling.** [`eventually`] retries a check until it holds or time runs out.
//! * **WASM guests** built by `scripts/build-wasm-examples.sh`: [`wasm_guest`]
//!   and [`optional_wasm_guest`].
//!
//! This is test support: on failure it panics with a message that says what
//! went wrong rather than returning errors.
//!
//! ```no_run
//! use serde_json::json;
//! use sqlx::PgPool;
//! use tasker_model::state::TaskState;
//! use tasker_testkit::{example, migrated, Stack};
//!
//! // In a test: `#[sqlx::test(migrations = false)] async fn diamond(pool: PgPool)`.
//! async fn diamond(pool: PgPool) {
//!     migrated(&pool).await;
//!     tasker_store::template::register(&pool, &example("diamond")).await.unwrap();
//!     let stack = Stack::builder(&pool).workers(2).start().await;
//!     let id = stack.create("diamond", json!({ "value": 3 })).await;
//!     assert_eq!(stack.wait(id).await, TaskState::Complete);
//!     assert_eq!(stack.steps(id).await["join"].result, Some(json!({ "value": 784 })));
//!     stack.stop().await;
//! }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_config::{Secret, TaskerConfig};
use tasker_model::template::{load_file, Template};
use tasker_orchestrator::OrchestratorSettings;
use tasker_store::task::{NewTask, StepRow};
use tasker_worker::handler::{examples, HandlerRegistry};
use tasker_worker::WorkerSettings;

mod stack;
pub use stack::{Stack, StackBuilder};

/// The bootstrap API key of [`config`] (the API accepts it with every permission).
pub const BOOTSTRAP_KEY: &str = "testkit-bootstrap-key-0123456789";

/// How long [`Stack::wait`] waits for a task to settle, unless
/// [`StackBuilder::wait_timeout`] says otherwise.
pub const WAIT: Duration = Duration::from_secs(20);

/// The text of `examples/templates/diamond.yaml` (the API tests post it).
pub const DIAMOND_YAML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/templates/diamond.yaml"
));

// ---------------------------------------------------------------- database

/// Installs PGMQ and the tasker schema into the test's fresh database.
pub async fn migrated(pool: &PgPool) {
    tasker_store::migrate::migrate(pool)
        .await
        .expect("migrating the test database");
}

// ---------------------------------------------------------------- fixtures

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `examples/templates/`, the example templates.
pub fn examples_dir() -> PathBuf {
    repo_root().join("examples/templates")
}

/// One of the example templates: `examples/templates/<name>.yaml`.
pub fn example(name: &str) -> Template {
    let path = examples_dir().join(format!("{name}.yaml"));
    load_file(&path).unwrap_or_else(|e| panic!("example template {}: {e}", path.display()))
}

/// Registers the example template `name` and returns it.
pub async fn register_example(pool: &PgPool, name: &str) -> Template {
    let tpl = example(name);
    tasker_store::template::register(pool, &tpl)
        .await
        .unwrap_or_else(|e| panic!("registering example {name}: {e}"));
    tpl
}

/// Parses and registers an inline template.
pub async fn register_inline(pool: &PgPool, yaml: &str) -> Template {
    let tpl = Template::from_yaml_str(yaml, "<inline>")
        .unwrap_or_else(|e| panic!("inline template: {e}\n{yaml}"));
    tasker_store::template::register(pool, &tpl)
        .await
        .unwrap_or_else(|e| panic!("registering {}: {e}", tpl.name));
    tpl
}

/// A registry with the example handlers (`math.compute`, `demo.sleep`, `ecommerce.*`).
pub fn registry() -> HandlerRegistry {
    let r = HandlerRegistry::new();
    examples::register(&r);
    r
}

/// The configuration of tests: the base configuration with fast sweeps and
/// polls, the API on `127.0.0.1:0` with [`BOOTSTRAP_KEY`], and no WASM disk cache.
pub fn config() -> TaskerConfig {
    let mut config = TaskerConfig::from_toml_str("").expect("the base configuration");
    config.orchestration.retry_sweep_interval_ms = 50;
    config.orchestration.fallback_poll_interval_ms = 200;
    config.web.bind = "127.0.0.1:0".into();
    config.web.auth.bootstrap_key = Some(Secret::new(BOOTSTRAP_KEY));
    config.wasm.cache_dir = PathBuf::new();
    config
}

/// Orchestrator settings from [`config`] (a fresh processor id each call).
pub fn orchestrator_settings() -> OrchestratorSettings {
    OrchestratorSettings::from_config(&config())
}

/// Worker settings of tests: namespace `demo`, 200 ms polls, a 5 s lease,
/// 1 s heartbeats, 2 s shutdown grace (a fresh worker id each call).
pub fn worker_settings() -> WorkerSettings {
    WorkerSettings {
        namespaces: vec!["demo".into()],
        poll_interval: Duration::from_millis(200),
        lease_seconds: 5,
        heartbeat_interval: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(2),
        ..Default::default()
    }
}

/// A request for a task of the latest version of `namespace/name`.
pub fn new_task(namespace: &str, name: &str, context: Value) -> NewTask {
    NewTask {
        namespace: namespace.into(),
        name: name.into(),
        version: None,
        context,
        priority: 0,
        idempotency_key: None,
        traceparent: None,
    }
}

/// The steps of a task, by name.
pub async fn steps(pool: &PgPool, task_id: Uuid) -> BTreeMap<String, StepRow> {
    tasker_store::task::detail(pool, task_id)
        .await
        .unwrap_or_else(|e| panic!("reading task {task_id}: {e}"))
        .steps
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect()
}

/// The state column of a task.
pub async fn task_state(pool: &PgPool, task_id: Uuid) -> String {
    sqlx::query_scalar("SELECT state FROM tasker.tasks WHERE id = $1")
        .bind(task_id)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("reading the state of task {task_id}: {e}"))
}

// ---------------------------------------------------------------- polling

/// Runs `check` every 50 ms until it returns true (then true) or `within`
/// has passed (then false): `assert!(eventually(..).await, "what never happened")`.
#[must_use = "assert on the result"]
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- WASM guests

/// Where `scripts/build-wasm-examples.sh` puts the guests:
/// `$CARGO_TARGET_DIR/wasm-examples`, by default `target/wasm-examples`.
pub fn wasm_examples_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("wasm-examples")
}

/// A guest the tests need (the Rust ones: `scripts/build-wasm-examples.sh rust`).
pub fn wasm_guest(file: &str) -> Vec<u8> {
    let path = wasm_examples_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the guests with scripts/build-wasm-examples.sh rust",
            path.display()
        )
    })
}

/// A guest that may be absent locally (Python, JavaScript): `None`, with a
/// note on stderr, unless `REQUIRE_WASM_EXAMPLES=1` (as in CI), which makes
/// a missing guest a failure.
pub fn optional_wasm_guest(file: &str) -> Option<Vec<u8>> {
    let path = wasm_examples_dir().join(file);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if std::env::var("REQUIRE_WASM_EXAMPLES").as_deref() == Ok("1") => panic!(
            "{}: {e}; REQUIRE_WASM_EXAMPLES=1 needs every guest (scripts/build-wasm-examples.sh)",
            path.display()
        ),
        Err(_) => {
            eprintln!("skipping {file}: not built (scripts/build-wasm-examples.sh builds it)");
            None
        }
    }
}

/// Fault injection: from now on, recording a result of `step` in
/// `tasker.step_results` raises "injected failure" (a trigger named
/// `fail_for_doomed`; drop it to stop).
pub async fn fail_recording_results_of(pool: &PgPool, step: Uuid) {
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION public.fail_for_doomed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.step_id = '{step}' THEN RAISE EXCEPTION 'injected failure'; END IF;
               RETURN NEW; END $$;
         CREATE TRIGGER fail_for_doomed BEFORE INSERT ON tasker.step_results
            FOR EACH ROW EXECUTE FUNCTION public.fail_for_doomed();"
    ))
    .execute(pool)
    .await
    .expect("installing the fault-injection trigger");
}
