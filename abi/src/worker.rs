//! A worker host driven through the ABI: serves namespaces with push and pull
//! handlers, optionally with an orchestrator in the same process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use tasker_config::TaskerConfig;
use tasker_notify::Wakeups;
use tasker_orchestrator::{self as orchestration, OrchestratorSettings};
use tasker_store::db::{Database, DbSettings};
use tasker_store::template::TemplateCache;
use tasker_worker::handler::{Handler, HandlerRegistry};
use tasker_worker::{self as worker, WorkerSettings};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::error::AbiError;
use crate::handler::{PullHandler, PullQueue, StepHandle};

/// Loads a configuration: a TOML text on top of the built-in defaults (`None`:
/// the defaults alone), and a database URL that wins over `database.url`. With
/// neither, `DATABASE_URL` from the environment, else the local default
/// database (as the `tasker` binary finds it).
pub fn load_config(
    toml: Option<&str>,
    database_url: Option<&str>,
) -> Result<TaskerConfig, AbiError> {
    let mut config = TaskerConfig::from_toml_str(toml.unwrap_or(""))?;
    if let Some(url) = database_url {
        config.database.url = Some(tasker_config::Secret::new(url));
    } else if config.database.url.is_none() {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            if !url.is_empty() {
                config.database.url = Some(tasker_config::Secret::new(url));
            }
        }
    }
    Ok(config)
}

/// Opens and migrates the configured database (on the caller's runtime).
pub(crate) async fn open_database(config: &TaskerConfig) -> Result<Database, AbiError> {
    let db = Database::open(&DbSettings::from_config(config))
        .await
        .map_err(|e| AbiError::Database(e.to_string()))?;
    tasker_store::migrate::migrate(&db.pool)
        .await
        .map_err(|e| AbiError::Database(format!("migrating: {e}")))?;
    Ok(db)
}

/// A worker host. Configure it (namespaces, handlers), [`start`](Worker::start)
/// it, serve pulled steps with [`next_step`](Worker::next_step), and
/// [`stop`](Worker::stop) it. All methods take `&self` and are thread-safe.
pub struct Worker {
    config: TaskerConfig,
    registry: Arc<HandlerRegistry>,
    pull: PullQueue,
    setup: Mutex<Setup>,
    state: Mutex<State>,
    /// Disconnected when the worker stops, which wakes every `next_step`.
    stopping: Receiver<()>,
    stop_signal: Mutex<Option<Sender<()>>>,
}

#[derive(Default)]
struct Setup {
    namespaces: Vec<String>,
    pools: Vec<String>,
    /// `(runtime, version)` for the worker registry; default `c`.
    runtime: Option<(String, String)>,
    orchestrate: bool,
    /// Handler names registered so far (push or pull).
    handlers: Vec<String>,
}

enum State {
    Created,
    Running(Running),
    Stopped,
}

struct Running {
    runtime: Runtime,
    db: Database,
    shutdown: CancellationToken,
    worker: tokio::task::JoinHandle<Result<(), worker::WorkerError>>,
    orchestrator: Option<tokio::task::JoinHandle<()>>,
}

impl Worker {
    /// A worker with `config` (see [`load_config`]).
    pub fn new(config: TaskerConfig) -> Worker {
        let (stop_signal, stopping) = crossbeam_channel::bounded(0);
        Worker {
            pull: PullQueue::new(config.worker.concurrency as usize),
            registry: Arc::new(HandlerRegistry::new()),
            setup: Mutex::new(Setup::default()),
            config,
            state: Mutex::new(State::Created),
            stopping,
            stop_signal: Mutex::new(Some(stop_signal)),
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &TaskerConfig {
        &self.config
    }

    /// Adds a namespace to serve (before [`start`](Worker::start)). Namespaces
    /// added this way replace `worker.namespaces` from the configuration.
    pub fn add_namespace(&self, namespace: &str) -> Result<(), AbiError> {
        tasker_store::queue::step_queue(namespace)
            .map_err(|e| AbiError::InvalidArgument(e.to_string()))?;
        self.before_start("add a namespace")?;
        let mut setup = self.lock_setup();
        if !setup.namespaces.iter().any(|n| n == namespace) {
            setup.namespaces.push(namespace.to_string());
        }
        Ok(())
    }

    /// Adds a pool to serve beyond the namespaces (before
    /// [`start`](Worker::start)): the step queue `steps_<pool>` that templates
    /// route steps to with `pool:`. Adds to `worker.pools` from the configuration.
    pub fn add_pool(&self, pool: &str) -> Result<(), AbiError> {
        tasker_store::queue::step_queue(pool)
            .map_err(|e| AbiError::InvalidArgument(e.to_string()))?;
        self.before_start("add a pool")?;
        let mut setup = self.lock_setup();
        if !setup.pools.iter().any(|p| p == pool) {
            setup.pools.push(pool.to_string());
        }
        Ok(())
    }

    /// Names the language the handlers run in and its version, as the worker
    /// registry shows them (before [`start`](Worker::start); default `c` and
    /// libtasker's version). The bindings set theirs (`python`, `ruby`).
    pub fn set_runtime(&self, runtime: &str, version: &str) -> Result<(), AbiError> {
        let ok = |s: &str| !s.is_empty() && s.len() <= 64 && !s.chars().any(char::is_control);
        if !ok(runtime) || !ok(version) {
            return Err(AbiError::InvalidArgument(
                "runtime and version must be 1..=64 printable characters".into(),
            ));
        }
        self.before_start("set the runtime")?;
        self.lock_setup().runtime = Some((runtime.to_string(), version.to_string()));
        Ok(())
    }

    /// Also runs an orchestrator in this process (default: off, since
    /// orchestrators usually run as `tasker server`).
    pub fn set_orchestrate(&self, on: bool) -> Result<(), AbiError> {
        self.before_start("change orchestration")?;
        self.lock_setup().orchestrate = on;
        Ok(())
    }

    /// Serves handler `name` with `handler` (a push backend, or any Rust handler).
    /// Registering a name again replaces its handler.
    pub fn register_push(&self, name: &str, handler: Arc<dyn Handler>) -> Result<(), AbiError> {
        check_handler_name(name)?;
        self.registry.register(name, handler);
        self.note_handler(name);
        Ok(())
    }

    /// Serves handler `name` by pull: its steps wait for [`next_step`](Worker::next_step).
    pub fn register_pull(&self, name: &str) -> Result<(), AbiError> {
        check_handler_name(name)?;
        self.registry
            .register(name, Arc::new(PullHandler::new(self.pull.clone())));
        self.note_handler(name);
        Ok(())
    }

    /// Connects to the database (migrating it), and starts serving.
    pub fn start(&self) -> Result<(), AbiError> {
        let mut state = self.lock_state();
        match *state {
            State::Created => {}
            State::Running(_) => {
                return Err(AbiError::State("the worker is already running".into()))
            }
            State::Stopped => return Err(AbiError::Stopped),
        }
        let mut setup = self.lock_setup();
        if setup.namespaces.is_empty() && setup.pools.is_empty() {
            setup.namespaces = self.config.worker.namespaces.clone();
        }
        if setup.namespaces.is_empty()
            && setup.pools.is_empty()
            && self.config.worker.pools.is_empty()
        {
            return Err(AbiError::InvalidArgument(
                "the worker serves no namespaces or pools: add one (or set worker.namespaces)"
                    .into(),
            ));
        }
        if setup.handlers.is_empty() {
            return Err(AbiError::InvalidArgument(
                "the worker has no handlers: register at least one before starting".into(),
            ));
        }
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(8);
        let runtime = crate::runtime::build("tasker-worker", threads)?;
        // Spans go out when `[telemetry] traces_enabled`, as this host's
        // language (`tasker-python`, `tasker-ruby`, `tasker-c`).
        let role = format!("tasker-{}", crate::runtime::host_language());
        tasker_trace::start_export(&self.config.telemetry, &role)
            .map_err(|e| AbiError::InvalidArgument(e.to_string()))?;
        // A library call fails with a clear error when the database cannot
        // be reached (the caller decides whether to wait); once started, the
        // worker rides out outages (its Availability).
        let db = runtime.block_on(open_database(&self.config))?;
        let shutdown = CancellationToken::new();
        // One Wakeups for this worker and its orchestrator: each wakes the
        // other directly.
        let wakeups = Wakeups::with_availability(&db.pool, db.availability().clone());
        let orchestrator = if setup.orchestrate {
            let settings = OrchestratorSettings::from_config(&self.config);
            let (_orch, done) = runtime
                .block_on(orchestration::start(
                    db.pool.clone(),
                    wakeups.clone(),
                    TemplateCache::default(),
                    settings,
                    shutdown.clone(),
                ))
                .map_err(|e| AbiError::Database(format!("starting the orchestrator: {e}")))?;
            Some(done)
        } else {
            None
        };
        let mut settings = WorkerSettings::from_config(&self.config, setup.namespaces.clone());
        for p in &setup.pools {
            if !settings.pools.contains(p) {
                settings.pools.push(p.clone());
            }
        }
        (settings.runtime, settings.runtime_version) = setup.runtime.clone().unwrap_or_else(|| {
            (
                "c".into(),
                format!("libtasker {}", env!("CARGO_PKG_VERSION")),
            )
        });
        let worker = runtime.spawn(worker::run(
            db.pool.clone(),
            wakeups,
            self.registry.clone(),
            settings,
            shutdown.clone(),
        ));
        *state = State::Running(Running {
            runtime,
            db,
            shutdown,
            worker,
            orchestrator,
        });
        Ok(())
    }

    /// The next pulled step, waiting up to `timeout`: `Ok(None)` when none
    /// came. Once [`stop`](Worker::stop) is called, steps already queued are
    /// still handed out (so they finish within the shutdown grace), then
    /// [`AbiError::Stopped`] is returned.
    pub fn next_step(&self, timeout: Duration) -> Result<Option<Arc<StepHandle>>, AbiError> {
        if matches!(*self.lock_state(), State::Created) {
            return Err(AbiError::State("the worker is not started".into()));
        }
        let queue = self.pull_receiver();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            crossbeam_channel::select! {
                recv(queue) -> step => match step {
                    Ok(step) if step.is_cancelled() => continue,
                    Ok(step) => return Ok(Some(step)),
                    Err(_) => return Err(AbiError::Stopped),
                },
                recv(self.stopping) -> _ => {
                    // Stopping: drain what is queued, then say so.
                    while let Ok(step) = queue.try_recv() {
                        if !step.is_cancelled() {
                            return Ok(Some(step));
                        }
                    }
                    return Err(AbiError::Stopped);
                },
                default(deadline.saturating_duration_since(std::time::Instant::now())) => return Ok(None),
            }
        }
    }

    fn pull_receiver(&self) -> &Receiver<Arc<StepHandle>> {
        self.pull.receiver()
    }

    /// Stops serving: running steps get the configured shutdown grace
    /// (`worker.shutdown_grace_seconds`) to finish — pulled ones must still be
    /// completed by their threads — then are released for another worker.
    /// Waits for all of it. Stopping twice, or a worker never started, is fine.
    /// Must not be called from a handler running on the worker's own threads.
    pub fn stop(&self) -> Result<(), AbiError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(AbiError::State(
                "a worker cannot be stopped from inside one of its own handlers".into(),
            ));
        }
        // Wake every next_step at once.
        drop(
            self.stop_signal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let previous = std::mem::replace(&mut *self.lock_state(), State::Stopped);
        let State::Running(running) = previous else {
            return Ok(());
        };
        let Running {
            runtime,
            db,
            shutdown,
            worker,
            orchestrator,
        } = running;
        shutdown.cancel();
        let result = runtime.block_on(async move {
            let result = worker.await;
            if let Some(o) = orchestrator {
                let _ = o.await;
            }
            db.close().await;
            result
        });
        runtime.shutdown_timeout(Duration::from_secs(5));
        if let Some(exporting) = tasker_trace::export::running() {
            exporting.flush();
        }
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AbiError::Database(e.to_string())),
            Err(e) => Err(AbiError::Internal(format!("the worker task failed: {e}"))),
        }
    }

    /// True while started and not stopped.
    pub fn is_running(&self) -> bool {
        matches!(*self.lock_state(), State::Running(_))
    }

    fn before_start(&self, what: &str) -> Result<(), AbiError> {
        match *self.lock_state() {
            State::Created => Ok(()),
            _ => Err(AbiError::State(format!(
                "cannot {what} once the worker has started"
            ))),
        }
    }

    fn note_handler(&self, name: &str) {
        let mut setup = self.lock_setup();
        if !setup.handlers.iter().any(|n| n == name) {
            setup.handlers.push(name.to_string());
        }
    }

    fn lock_setup(&self) -> std::sync::MutexGuard<'_, Setup> {
        self.setup.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping the worker while freeing it failed");
        }
    }
}

/// Handler names follow the template rule (`^[a-z][a-z0-9_.-]*$`, at most 100
/// characters): a name no template can use would never receive a step.
fn check_handler_name(name: &str) -> Result<(), AbiError> {
    use tasker_model::template::{validate_identifier, IdentKind};
    validate_identifier(IdentKind::HandlerName, name)
        .map_err(|e| AbiError::InvalidArgument(e.to_string()))
}
