//! The polyglot test's processes: the `tasker` server and workers, the
//! native Python, Ruby and C workers, and how to start, signal and query them.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use tasker_model::state::TaskState;
use tasker_notify::watch::TaskWatcher;
use tasker_notify::Wakeups;
use tasker_store as store;
use tasker_store::template::TemplateCache;
use tasker_testkit::{new_task, repo_root, steps};
use uuid::Uuid;

use super::common::tasker_bin;
use super::{NAMESPACE, NATIVE_CONFIG, PREPARED, REGISTRY_HEARTBEAT, TEMPLATE};

/// Where a prepared piece is (set by scripts/test-polyglot.sh): fails loudly without it.
pub fn required(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: it names {what}. This test needs the Python package, the Ruby \
             extension and the C worker built: run scripts/test-polyglot.sh"
        ),
    }
}

/// A child process, killed when dropped.
pub struct Proc {
    child: Child,
    pub what: &'static str,
}

impl Proc {
    pub fn spawn(what: &'static str, mut command: Command) -> Proc {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {what}: {e} ({command:?})"));
        Proc { child, what }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {} ({})", self.child.id(), self.what);
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails the test if the process has exited (it should serve until killed).
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the {} exited early: {status}", self.what);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes of the test and how to start them.
pub struct Cluster {
    pub db: String,
    pub api: String,
    pub bind: String,
    pub key: String,
}

impl Cluster {
    pub fn tasker(&self, args: &[&str]) -> Command {
        let mut c = Command::new(tasker_bin());
        c.args(args)
            .env("TASKER_ENV", "test")
            .env("TASKER_DATABASE__URL", &self.db)
            .env("TASKER_CLIENT__URL", &self.api)
            .env("TASKER_CLIENT__API_KEY", &self.key)
            .env("TASKER_WEB__BIND", &self.bind)
            .env(
                "TASKER_WORKER__REGISTRY_HEARTBEAT_SECONDS",
                REGISTRY_HEARTBEAT.to_string(),
            )
            .env_remove("DATABASE_URL");
        c
    }

    /// Runs `tasker args`, returning stdout; fails with its stderr.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.tasker(args).output().expect("run tasker");
        assert!(
            out.status.success(),
            "tasker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn native(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("DATABASE_URL", &self.db)
            .env("POLYGLOT_WORKER_CONFIG", NATIVE_CONFIG);
        c
    }

    pub fn server(&self) -> Proc {
        let mut c = self.tasker(&["server"]);
        // A debug build compiles the 12-18 MB Python and JavaScript guests
        // at upload for a while (longer than the default 30 s limit on a
        // loaded 2-core machine).
        c.env("TASKER_WEB__REQUEST_TIMEOUT_MS", "180000");
        Proc::spawn("tasker server", c)
    }

    pub fn wasm_worker(&self) -> Proc {
        Proc::spawn(
            "WASM worker (tasker worker --pool wasm)",
            self.tasker(&["worker", "--namespace", NAMESPACE, "--pool", "wasm"]),
        )
    }

    pub fn python_worker(&self) -> Proc {
        let mut c = self.native(&required(PREPARED[0].0, PREPARED[0].1));
        c.arg(repo_root().join("examples/polyglot/worker.py"));
        Proc::spawn("Python worker", c)
    }

    pub fn ruby_worker(&self) -> Proc {
        let lib = required(PREPARED[1].0, PREPARED[1].1);
        let mut c = self.native("ruby");
        c.args(["-I", &lib])
            .arg(repo_root().join("examples/polyglot/worker.rb"));
        Proc::spawn("Ruby worker", c)
    }

    pub fn c_worker(&self) -> Proc {
        Proc::spawn(
            "C worker",
            self.native(&required(PREPARED[2].0, PREPARED[2].1)),
        )
    }

    /// `tasker worker list --all --json`: the registry's rows by pid.
    pub fn registry(&self) -> BTreeMap<i64, Value> {
        let list: Value =
            serde_json::from_str(&self.cli(&["worker", "list", "--all", "--json"])).unwrap();
        list["workers"]
            .as_array()
            .expect("workers")
            .iter()
            .map(|w| (w["pid"].as_i64().unwrap(), w.clone()))
            .collect()
    }
}

/// The registry status of the worker process `pid` (from the database).
pub async fn status_of(pool: &PgPool, pid: i32) -> Option<String> {
    store::worker::list(pool, true)
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.pid == pid)
        .max_by_key(|w| w.started_at)
        .map(|w| w.status)
}

/// Creates a task for `input` through the store and announces it.
pub async fn create(wakeups: &Wakeups, cache: &TemplateCache, input: &Value) -> Uuid {
    let (created, changed) = store::task::create(
        wakeups.pool(),
        cache,
        &new_task(NAMESPACE, TEMPLATE, input.clone()),
        "polyglot-test",
    )
    .await
    .unwrap();
    wakeups.announce(&changed);
    created.task_id
}

pub async fn wait_complete(
    watcher: &TaskWatcher,
    pool: &PgPool,
    tasks: &[(Uuid, Value)],
    within: Duration,
) {
    let deadline = Instant::now() + within;
    for (id, _) in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        let state = watcher.wait(*id, left).await;
        assert!(
            matches!(state, Ok(TaskState::Complete)),
            "task {id} did not complete in {within:?}: {state:?}\n{:#?}",
            steps(pool, *id).await
        );
    }
}
