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
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use tasker_config::{Secret, TaskerConfig};
use tasker_model::state::TaskState;
use tasker_model::template::{load_file, Template};
use tasker_notify::watch::TaskWatcher;
use tasker_notify::Wakeups;
use tasker_orchestrator::{Orchestrator, OrchestratorSettings};
use tasker_store::task::{NewTask, StepRow};
use tasker_store::template::TemplateCache;
use tasker_worker::handler::{examples, HandlerRegistry};
use tasker_worker::WorkerSettings;

/// The bootstrap API key of [`config`] (the API accepts it with every permission).
pub const BOOTSTRAP_KEY: &str = "testkit-bootstrap-key";

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

// ---------------------------------------------------------------- the harness

/// Orchestrators, workers and (feature `api`) the HTTP API, running in this
/// process against one database on one shutdown token.
///
/// Dropping the stack cancels the token; [`Stack::stop`] also waits (10 s at
/// most) for every component to end and panics if one did not or failed.
///
/// Mind the pool: a `#[sqlx::test]` pool has 5 connections, and each
/// orchestrator and worker holds one to LISTEN on, as do the task watcher
/// (once used) and the API's event streams. Tests that run more pass a
/// larger pool of their own.
pub struct Stack {
    pool: PgPool,
    /// Shared by everything in the stack, as in one `tasker` process.
    wakeups: Wakeups,
    orchestrators: Vec<Orchestrator>,
    /// Started on first use: its LISTEN connection holds one of the five
    /// connections a `#[sqlx::test]` pool has.
    watcher: OnceCell<TaskWatcher>,
    shutdown: CancellationToken,
    handles: Vec<JoinHandle<()>>,
    wait_timeout: Duration,
    #[cfg(feature = "api")]
    api: Option<std::net::SocketAddr>,
    #[cfg(feature = "wasm")]
    _wasm_cache: Option<tempfile::TempDir>,
}

/// How to start a [`Stack`]; see [`Stack::builder`].
pub struct StackBuilder {
    pool: PgPool,
    registry: HandlerRegistry,
    orchestrators: usize,
    workers: usize,
    config: TaskerConfig,
    worker: WorkerSettings,
    wait_timeout: Duration,
    #[cfg(feature = "api")]
    api: bool,
    #[cfg(feature = "wasm")]
    wasm: bool,
}

impl StackBuilder {
    /// The handlers of the workers (default: [`registry`]).
    pub fn registry(mut self, registry: HandlerRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// How many orchestrators (default 1); 0 for none.
    pub fn orchestrators(mut self, n: usize) -> Self {
        self.orchestrators = n;
        self
    }

    /// How many workers (default 1); 0 for none.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Changes the configuration (default: [`config`]) the orchestrators, the
    /// API and the WASM backend are made from.
    pub fn config(mut self, change: impl FnOnce(&mut TaskerConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Changes the workers' settings (default: [`worker_settings`]); each
    /// worker gets its own id derived from `worker_id`.
    pub fn worker(mut self, change: impl FnOnce(&mut WorkerSettings)) -> Self {
        change(&mut self.worker);
        self
    }

    /// How long [`Stack::wait`] waits (default [`WAIT`]).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Serves the HTTP API too (on the configured `web.bind`, by default
    /// `127.0.0.1:0`); see [`Stack::base_url`].
    #[cfg(feature = "api")]
    pub fn api(mut self) -> Self {
        self.api = true;
        self
    }

    /// Adds the WASM backend to the workers' registry, with a fresh WASM
    /// disk cache that is removed with the stack.
    #[cfg(feature = "wasm")]
    pub fn wasm(mut self) -> Self {
        self.wasm = true;
        self
    }

    /// Starts everything: the WASM backend, the API, the orchestrators, the
    /// workers, in that order.
    pub async fn start(self) -> Stack {
        #[allow(unused_mut)]
        let mut config = self.config;
        let pool = self.pool;
        let wakeups = Wakeups::new(&pool);
        let shutdown = CancellationToken::new();
        let mut handles = Vec::new();

        #[cfg(feature = "wasm")]
        let wasm_cache = if self.wasm {
            let dir = tempfile::Builder::new()
                .prefix("tasker-wasm-test-")
                .tempdir()
                .expect("a temporary WASM cache directory");
            config.wasm.cache_dir = dir.path().to_path_buf();
            tasker_worker::handler::wasm::install(&self.registry, pool.clone(), &config.wasm)
                .await
                .unwrap_or_else(|e| panic!("installing the WASM backend: {e}"));
            Some(dir)
        } else {
            None
        };

        #[cfg(feature = "api")]
        let api = if self.api {
            let (addr, server) =
                tasker_api::serve(pool.clone(), wakeups.clone(), &config, shutdown.clone())
                    .await
                    .unwrap_or_else(|e| panic!("starting the API: {e}"));
            handles.push(tokio::spawn(async move {
                server
                    .await
                    .expect("the API server task")
                    .expect("the API server");
            }));
            Some(addr)
        } else {
            None
        };

        let mut orchestrators = Vec::new();
        for _ in 0..self.orchestrators {
            let (orch, handle) = tasker_orchestrator::start(
                pool.clone(),
                wakeups.clone(),
                TemplateCache::default(),
                OrchestratorSettings::from_config(&config),
                shutdown.clone(),
            )
            .await
            .unwrap_or_else(|e| panic!("starting an orchestrator: {e}"));
            orchestrators.push(orch);
            handles.push(handle);
        }

        let registry = Arc::new(self.registry);
        for i in 0..self.workers {
            let mut settings = self.worker.clone();
            settings.worker_id = format!("{}-{i}", self.worker.worker_id);
            let (pool, registry, shutdown) = (pool.clone(), registry.clone(), shutdown.clone());
            let wakeups = wakeups.clone();
            handles.push(tokio::spawn(async move {
                tasker_worker::run(pool, wakeups, registry, settings, shutdown)
                    .await
                    .unwrap_or_else(|e| panic!("worker {i} failed: {e}"));
            }));
        }

        Stack {
            pool,
            wakeups,
            orchestrators,
            watcher: OnceCell::new(),
            shutdown,
            handles,
            wait_timeout: self.wait_timeout,
            #[cfg(feature = "api")]
            api,
            #[cfg(feature = "wasm")]
            _wasm_cache: wasm_cache,
        }
    }
}

impl Stack {
    /// A builder: by default one orchestrator and one worker with the example
    /// handlers and the test settings ([`config`], [`worker_settings`]).
    pub fn builder(pool: &PgPool) -> StackBuilder {
        StackBuilder {
            pool: pool.clone(),
            registry: registry(),
            orchestrators: 1,
            workers: 1,
            config: config(),
            worker: worker_settings(),
            wait_timeout: WAIT,
            #[cfg(feature = "api")]
            api: false,
            #[cfg(feature = "wasm")]
            wasm: false,
        }
    }

    /// One orchestrator and one worker running `registry`'s handlers.
    pub async fn start(pool: &PgPool, registry: HandlerRegistry) -> Stack {
        Stack::builder(pool).registry(registry).start().await
    }

    /// The pool everything runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The [`Wakeups`] everything in the stack shares: announce through it
    /// what a test writes with the store directly.
    pub fn wakeups(&self) -> &Wakeups {
        &self.wakeups
    }

    /// The first orchestrator.
    pub fn orchestrator(&self) -> &Orchestrator {
        self.orchestrators
            .first()
            .expect("the stack runs no orchestrator")
    }

    /// Every orchestrator, in start order.
    pub fn orchestrators(&self) -> &[Orchestrator] {
        &self.orchestrators
    }

    /// A watcher of task states, started on first use (see [`Stack::wait`]).
    pub async fn watcher(&self) -> &TaskWatcher {
        self.watcher
            .get_or_init(|| async {
                TaskWatcher::start(&self.wakeups)
                    .await
                    .unwrap_or_else(|e| panic!("starting the task watcher: {e}"))
            })
            .await
    }

    /// Creates a task of `demo/<name>` through the first orchestrator.
    pub async fn create(&self, name: &str, context: Value) -> Uuid {
        self.orchestrator()
            .create_task(new_task("demo", name, context))
            .await
            .unwrap_or_else(|e| panic!("creating a {name} task: {e}"))
            .task_id
    }

    /// Waits until the task settles (terminal or blocked) and returns its state.
    pub async fn wait(&self, task_id: Uuid) -> TaskState {
        self.watcher()
            .await
            .wait(task_id, self.wait_timeout)
            .await
            .unwrap_or_else(|e| panic!("waiting for task {task_id}: {e}"))
    }

    /// The steps of a task, by name.
    pub async fn steps(&self, task_id: Uuid) -> BTreeMap<String, StepRow> {
        steps(&self.pool, task_id).await
    }

    /// The address the API listens on.
    #[cfg(feature = "api")]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.api
            .expect("the stack serves no API (StackBuilder::api)")
    }

    /// `http://<addr>`, the API's base URL.
    #[cfg(feature = "api")]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Cancels the shutdown token and waits for every component to end;
    /// panics if one takes longer than 10 s or failed.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for h in std::mem::take(&mut self.handles) {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("a component did not stop within 10 s")
                .expect("a component failed");
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
