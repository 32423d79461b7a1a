//! The processes behind the dashboard's test: a `tasker server` and a
//! `tasker worker` on the test's database, with an admin and a read-only key.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tasker_store as store;
use tasker_store::template::TemplateCache;
use tasker_testkit::{eventually, new_task};
use uuid::Uuid;

use crate::common::{db_url, free_port, tasker_bin};

/// The namespace of the test's templates (the worker serves it).
pub const NAMESPACE: &str = "ui";

/// `target/ui-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("target/")
        .join("ui-screenshots")
}

/// A `tasker` process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The running server and worker, and the keys to sign in with.
pub struct Cluster {
    pub pool: PgPool,
    /// `http://127.0.0.1:<port>`.
    pub origin: String,
    /// A key with `admin`.
    pub admin: String,
    /// A key with `tasks:read` only.
    pub reader: String,
    _processes: Vec<Proc>,
}

fn tasker(pool: &PgPool, port: u16, args: &[&str]) -> Command {
    let mut c = Command::new(tasker_bin());
    c.args(args)
        .env("TASKER_ENV", "test")
        .env("TASKER_DATABASE__URL", db_url(pool))
        .env("TASKER_WEB__BIND", format!("127.0.0.1:{port}"))
        .env("TASKER_WORKER__REGISTRY_HEARTBEAT_SECONDS", "1")
        .env_remove("DATABASE_URL");
    c
}

/// `tasker apikey create name --permissions permissions`: the key.
fn api_key(pool: &PgPool, name: &str, permissions: &str) -> String {
    let out = tasker(
        pool,
        0,
        &["apikey", "create", name, "--permissions", permissions],
    )
    .output()
    .expect("tasker apikey create");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("tk_"))
        .unwrap_or_else(|| panic!("no key: {}", String::from_utf8_lossy(&out.stderr)))
        .to_string()
}

impl Cluster {
    /// Creates the keys, starts the server and a worker of [`NAMESPACE`], and
    /// waits until both are up. The database must be migrated.
    pub async fn start(pool: &PgPool) -> Cluster {
        let admin = api_key(pool, "operator", "admin");
        let reader = api_key(pool, "reader", "tasks:read");
        let port = free_port();
        let spawn = |args: &[&str]| {
            Proc(
                tasker(pool, port, args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start tasker"),
            )
        };
        let processes = vec![
            spawn(&["server"]),
            spawn(&["worker", "--namespace", NAMESPACE]),
        ];
        let up = eventually(Duration::from_secs(60), || async {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && store::worker::list(pool, false)
                    .await
                    .is_ok_and(|w| !w.is_empty())
        })
        .await;
        assert!(up, "the server or the worker did not come up");
        Cluster {
            pool: pool.clone(),
            origin: format!("http://127.0.0.1:{port}"),
            admin,
            reader,
            _processes: processes,
        }
    }

    /// Creates a task of template `name` through the store, returning its id.
    pub async fn create_task(&self, name: &str, key: Option<&str>, context: Value) -> Uuid {
        let mut task = new_task(NAMESPACE, name, context);
        task.idempotency_key = key.map(str::to_string);
        let (created, _) =
            store::task::create(&self.pool, &TemplateCache::default(), &task, "ui-test")
                .await
                .expect("create a task");
        created.task_id
    }
}
