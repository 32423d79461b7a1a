//! The harness: orchestrators, workers and (feature `api`) the HTTP API in
//! this process, on one database, one [`Wakeups`] and one shutdown token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use tasker_config::TaskerConfig;
use tasker_model::state::TaskState;
use tasker_notify::watch::TaskWatcher;
use tasker_notify::Wakeups;
use tasker_orchestrator::{Orchestrator, OrchestratorSettings};
use tasker_store::task::StepRow;
use tasker_store::template::TemplateCache;
use tasker_worker::handler::HandlerRegistry;
use tasker_worker::WorkerSettings;

use crate::{config, new_task, registry, steps, worker_settings, WAIT};

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
            let (dir, temporary) = match shared_wasm_cache() {
                Some(dir) => (dir, None),
                None => {
                    let temporary = tempfile::Builder::new()
                        .prefix("tasker-wasm-test-")
                        .tempdir()
                        .expect("a temporary WASM cache directory");
                    (temporary.path().to_path_buf(), Some(temporary))
                }
            };
            config.wasm.cache_dir = dir;
            tasker_worker::handler::wasm::install(&self.registry, pool.clone(), &config.wasm)
                .await
                .unwrap_or_else(|e| panic!("installing the WASM backend: {e}"));
            temporary
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

/// The compiled-component cache every WASM stack of the test binaries shares:
/// `wasm-test-cache/` beside the binary's `deps/` (in the target directory),
/// kept between runs. Its files are named by the component's sha256 and the
/// engine's fingerprint (`tasker_wasm_host`), so a stack only ever loads what
/// its own engine compiled from the same bytes, and are written atomically, so
/// stacks running at once share them safely. A debug build compiles each of
/// the 12-18 MB Python and JavaScript guests in seconds: once, not once per
/// test. `None` (a temporary directory per stack then) when the binary is not
/// in a target directory or the directory cannot be made.
#[cfg(feature = "wasm")]
fn shared_wasm_cache() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    let dir = deps.parent()?.join("wasm-test-cache");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
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
