//! tasker processes through PostgreSQL restarts and outages, with no process
//! restarted: a `tasker server` (orchestrator + API) and a `tasker worker`
//! against a private cluster (the shared test server is never restarted),
//! which is stopped and started again under them.
//!
//! Shown: per-step latency after the restart is back within 2× of before
//! within 5 s; processes started while the database is down wait, then
//! serve; the API answers 503 with `Retry-After` while it is down, and
//! `/health/ready` says why.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use tasker_notify::Wakeups;
use tasker_store as store;
use tasker_store::db::{find_pg_bin_dir, PrivateCluster};
use tasker_store::template::TemplateCache;
use tasker_testkit::{migrated, new_task, register_inline};

mod common;
use common::{free_port, tasker_bin};

/// The bootstrap API key the servers accept.
const KEY: &str = "outage-test-key-0123456789";

/// A `tasker` child process logging to a file, killed when dropped.
struct Proc {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Proc {
    fn start(
        name: &'static str,
        dir: &Path,
        url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(tasker_bin())
            .args(args)
            .envs(env.iter().copied())
            .env("TASKER_ENV", "test")
            .env("TASKER_DATABASE__URL", url)
            .env_remove("DATABASE_URL")
            // Event-driven: nothing polls, so only wake-ups that work across
            // processes after the restart can move a task.
            .env("TASKER_ORCHESTRATION__MODE", "event_driven")
            .env("TASKER_WORKER__MODE", "event_driven")
            .env("TASKER_WEB__AUTH__BOOTSTRAP_KEY", KEY)
            .env("RUST_LOG", "warn,tasker_store::db=info,tasker_notify=info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start tasker");
        Proc { child, name, log }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of {}:\n{}", self.name, self.log());
        }
    }
}

/// One HTTP/1.1 request: status, headers (lower-case names), body.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Vec<(String, String)>, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Waits (up to `within`) until `GET path` on `port` answers `status`.
async fn until_status(port: u16, path: &str, status: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok((s, _, _)) = http(port, "GET", path, None).await {
            if s == status {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

const LINEAR: &str = r#"
namespace: proc
name: linear
version: 1.0.0
steps:
  - { name: a, handler: { name: math.compute, config: { op: square } } }
  - { name: b, handler: { name: math.compute, config: { op: add, operand: 1 } }, depends_on: [a] }
  - { name: c, handler: { name: math.compute, config: { op: multiply, operand: 1 } }, depends_on: [b] }
  - { name: d, handler: { name: math.compute, config: { op: square } }, depends_on: [c] }
"#;
const STEPS: u32 = 4;

/// Creates a task of `namespace/linear` through the store, retrying while
/// the test's own pool meets the restart's dead connections; announces it.
async fn create(wakeups: &Wakeups, cache: &TemplateCache, namespace: &str) -> Uuid {
    let req = new_task(namespace, "linear", json!({ "value": 2 }));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store::task::create(wakeups.pool(), cache, &req, "outage-test").await {
            Ok((created, changed)) => {
                wakeups.announce(&changed);
                return created.task_id;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("creating a task: {e}"),
        }
    }
}

/// How many steps of `task` are complete, and whether the task is.
async fn progress(pool: &PgPool, task: Uuid) -> (i64, bool) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM tasker.steps WHERE task_id = $1 AND state = 'complete'),
                (SELECT state = 'complete' FROM tasker.tasks WHERE id = $1)",
    )
    .bind(task)
    .fetch_one(pool)
    .await
    .unwrap_or((0, false))
}

/// Runs one task to completion (polled every 5 ms); its time per step, and
/// when its first step completed.
async fn per_step(
    wakeups: &Wakeups,
    cache: &TemplateCache,
    namespace: &str,
) -> (Duration, Instant) {
    let task = create(wakeups, cache, namespace).await;
    let started = Instant::now();
    let mut first_step = None;
    loop {
        let (steps, done) = progress(wakeups.pool(), task).await;
        if steps > 0 && first_step.is_none() {
            first_step = Some(Instant::now());
        }
        if done {
            let took = started.elapsed();
            return (took / STEPS, first_step.unwrap_or_else(Instant::now));
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "task {task} of {namespace} did not complete within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_survive_a_postgresql_restart_and_wait_through_an_outage() {
    if find_pg_bin_dir().is_err() {
        eprintln!("skipped: no PostgreSQL server binaries on this machine");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tasker-outage-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cluster =
        PrivateCluster::start(&dir.join("pgdata"), free_port()).expect("private cluster");
    let mut admin = PgConnectOptions::from_str(&cluster.url("postgres"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE tasker_outage")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = cluster.url("tasker_outage");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(PgConnectOptions::from_str(&url).unwrap())
        .await
        .unwrap();
    migrated(&pool).await;
    register_inline(&pool, LINEAR).await;
    register_inline(&pool, &LINEAR.replace("namespace: proc", "namespace: late")).await;
    let wakeups = Wakeups::new(&pool);
    let cache = TemplateCache::default();

    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut server = Proc::start(
        "server",
        &dir,
        &url,
        &["server"],
        &[("TASKER_WEB__BIND", bind.as_str())],
    );
    let mut worker = Proc::start(
        "worker",
        &dir,
        &url,
        &["worker", "--namespace", "proc"],
        &[],
    );
    assert!(
        until_status(port, "/health/ready", 200, Duration::from_secs(30)).await,
        "the server never became ready"
    );
    // Both processes listen before the first task (and their sessions'
    // own first wake-ups have passed).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Before: per-step latency of a few tasks, one at a time.
    let mut before = Vec::new();
    for _ in 0..5 {
        before.push(per_step(&wakeups, &cache, "proc").await.0);
    }
    let before = median(before);

    // The outage. The cluster stops as a restart stops it (fast shutdown:
    // every session terminated).
    let stopped_at = Instant::now();
    cluster.stop();

    // Processes started while it is down wait (they used to exit after 5 s,
    // "pool timed out").
    let late_port = free_port();
    let late_bind = format!("127.0.0.1:{late_port}");
    let mut late_worker = Proc::start(
        "late-worker",
        &dir,
        &url,
        &["worker", "--namespace", "late"],
        &[],
    );
    let mut late_server = Proc::start(
        "late-server",
        &dir,
        &url,
        &["server"],
        &[("TASKER_WEB__BIND", late_bind.as_str())],
    );

    // The API answers 503 with Retry-After, and /health/ready says why.
    let asked = Instant::now();
    let (status, headers, body) = http(
        port,
        "POST",
        "/v1/tasks",
        Some(&json!({ "namespace": "proc", "name": "linear", "context": { "value": 2 } })),
    )
    .await
    .expect("the API answers while the database is down");
    let create_503_after = asked.elapsed();
    assert_eq!(
        status, 503,
        "creating a task while the database is down: {body}"
    );
    assert!(
        header(&headers, "retry-after").is_some_and(|v| v.parse::<u64>().is_ok()),
        "no Retry-After: {headers:?}"
    );
    let (status, _, ready) = http(port, "GET", "/health/ready", None).await.unwrap();
    assert_eq!(status, 503, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(
        ready["details"]["reason"], "database_unreachable",
        "{ready}"
    );
    // The server started during the outage serves its health routes.
    assert!(
        until_status(late_port, "/health/live", 200, Duration::from_secs(10)).await,
        "the server started during the outage does not answer /health/live"
    );
    let (status, _, late_ready) = http(late_port, "GET", "/health/ready", None).await.unwrap();
    assert_eq!(status, 503, "{late_ready}");
    assert!(late_ready.contains("database_unreachable"), "{late_ready}");

    // Down for longer than the 5 s after which a process used to give up.
    let outage = Duration::from_secs(7);
    if let Some(rest) = outage.checked_sub(stopped_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    for p in [&mut server, &mut worker, &mut late_worker, &mut late_server] {
        assert!(
            p.running(),
            "{} exited during the outage:\n{}",
            p.name,
            p.log()
        );
    }
    cluster.start_again().expect("the cluster starts again");
    let up = Instant::now();
    let down_for = up.duration_since(stopped_at);

    // After: tasks one after another, from the moment PostgreSQL is back,
    // until three in a row run at (nearly) the speed of before.
    // Within 2x; on a loaded 2-core machine a few milliseconds either way are
    // noise (the fault this guards against costs seconds per step).
    let normal = (before * 2).max(before + Duration::from_millis(25));
    let mut after = Vec::new();
    let mut first_step_after = None;
    let mut back_to_normal = None;
    while up.elapsed() < Duration::from_secs(20) {
        let created_at = up.elapsed();
        let (took, first) = per_step(&wakeups, &cache, "proc").await;
        first_step_after.get_or_insert(first.duration_since(up));
        after.push((created_at, took));
        if took <= normal {
            back_to_normal.get_or_insert(created_at);
            let streak = after.iter().rev().take_while(|(_, t)| *t <= normal).count();
            if streak >= 3 {
                break;
            }
        } else {
            back_to_normal = None;
        }
    }
    let later = median(after.iter().rev().take(3).map(|(_, t)| *t).collect());

    // The processes started during the outage serve.
    let late = tokio::time::timeout(Duration::from_secs(20), per_step(&wakeups, &cache, "late"))
        .await
        .expect("the worker started during the outage runs steps");
    assert!(
        until_status(late_port, "/health/ready", 200, Duration::from_secs(20)).await,
        "the server started during the outage never became ready"
    );
    let (status, _, created) = http(
        late_port,
        "POST",
        "/v1/tasks",
        Some(&json!({ "namespace": "proc", "name": "linear", "context": { "value": 2 } })),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{created}");

    let warnings = |p: &Proc| p.log().lines().filter(|l| l.contains("WARN")).count();
    let outage_lines = |p: &Proc| {
        p.log()
            .lines()
            .filter(|l| l.contains("database unreachable; waiting for it"))
            .count()
    };
    eprintln!("--- PostgreSQL restart and outage (private cluster, event-driven processes)");
    eprintln!("per-step latency before the restart: {before:?} (median of 5 linear tasks of {STEPS} steps)");
    eprintln!("PostgreSQL down for {down_for:?}");
    eprintln!(
        "first completed step {:?} after PostgreSQL was back",
        first_step_after.unwrap_or_default()
    );
    eprintln!("tasks after the restart (created at, per step): {after:?}");
    eprintln!(
        "per-step latency back within 2x ({normal:?}) for tasks created from {back_to_normal:?} after the restart; \
         {later:?} per step then"
    );
    eprintln!(
        "worker started during the outage: its first task {:?} per step",
        late.0
    );
    eprintln!("POST /v1/tasks during the outage: 503 after {create_503_after:?}");
    for p in [&server, &worker, &late_server, &late_worker] {
        eprintln!(
            "{}: {} warning lines, {} 'database unreachable' lines",
            p.name,
            warnings(p),
            outage_lines(p)
        );
    }
    let back = back_to_normal.expect("per-step latency never came back to normal");
    assert!(
        back < Duration::from_secs(5),
        "per-step latency was back to normal only for tasks created {back:?} after the restart"
    );
    // The processes that only waited logged the outage once.
    for p in [&late_server, &late_worker] {
        assert_eq!(outage_lines(p), 1, "{}:\n{}", p.name, p.log());
    }

    drop((server, worker, late_worker, late_server));
    pool.close().await;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
