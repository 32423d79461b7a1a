//! tasker as separate processes against one real PostgreSQL: orchestrators and
//! worker hosts started with the `tasker` binary, killed with SIGKILL.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use tasker_model::state::TaskState;
use tasker_model::template::Template;
use tasker_notify::watch::TaskWatcher;
use tasker_notify::Wakeups;
use tasker_store as store;
use tasker_store::template::TemplateCache;
use tasker_testkit::{
    eventually, examples_dir, migrated, new_task, register_inline, steps, wasm_examples_dir,
};
use uuid::Uuid;

mod common;
use common::{admin_key, cli, db_url, Proc};

/// Migrates the test's database and registers the template `yaml`.
async fn setup(pool: &PgPool, yaml: &str) -> Template {
    migrated(pool).await;
    register_inline(pool, yaml).await
}

/// Creates a task of `proc/<name>` through the store and announces it (the
/// workers, in other processes, hear a NOTIFY).
async fn create(
    wakeups: &Wakeups,
    cache: &TemplateCache,
    name: &str,
    context: serde_json::Value,
) -> Uuid {
    let (created, changed) = store::task::create(
        wakeups.pool(),
        cache,
        &new_task("proc", name, context),
        "test",
    )
    .await
    .unwrap();
    wakeups.announce(&changed);
    created.task_id
}

/// Waits (up to 20 s) until `step` of `task` is in progress.
async fn wait_until_running(pool: &PgPool, task: Uuid, step: &str) {
    let running = eventually(Duration::from_secs(20), || async {
        steps(pool, task)
            .await
            .get(step)
            .is_some_and(|s| s.state == "in_progress")
    })
    .await;
    assert!(running, "step {step} never started");
}

const DIAMOND: &str = r#"
namespace: proc
name: diamond
version: 1.0.0
steps:
  - { name: start, handler: { name: math.compute, config: { op: square } } }
  - { name: left, handler: { name: math.compute, config: { op: add, operand: 1 } }, depends_on: [start] }
  - { name: right, handler: { name: math.compute, config: { op: multiply, operand: 2 } }, depends_on: [start] }
  - { name: join, handler: { name: math.compute, config: { op: add, operand: 0 } }, depends_on: [left, right] }
"#;

#[sqlx::test(migrations = false)]
async fn two_orchestrator_and_two_worker_processes_finish_200_diamonds_exactly_once(pool: PgPool) {
    setup(&pool, DIAMOND).await;
    let _procs = [
        Proc::start(&pool, &["server"]),
        Proc::start(&pool, &["server"]),
        Proc::start(&pool, &["worker", "--namespace", "proc"]),
        Proc::start(&pool, &["worker", "--namespace", "proc"]),
    ];
    let wakeups = Wakeups::new(&pool);
    let watcher = TaskWatcher::start(&wakeups).await.unwrap();
    let cache = TemplateCache::default();
    let mut ids = Vec::new();
    for i in 0..200i64 {
        ids.push((
            i,
            create(&wakeups, &cache, "diamond", json!({ "value": i % 50 })).await,
        ));
    }
    for (_, id) in &ids {
        assert_eq!(
            watcher.wait(*id, Duration::from_secs(120)).await.unwrap(),
            TaskState::Complete
        );
    }
    for (i, id) in &ids {
        let n = i % 50;
        let sq = n * n;
        let d = store::task::detail(&pool, *id).await.unwrap();
        let join = d.steps.iter().find(|s| s.name == "join").unwrap();
        assert_eq!(
            join.result,
            Some(json!({ "value": (sq + 1) + sq * 2 })),
            "task {id}"
        );
    }
    // Each task finalized exactly once; no step transition recorded twice.
    let finals: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT task_id, count(*) FROM tasker.task_transitions WHERE to_state = 'complete' GROUP BY task_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(finals.len(), 200);
    assert!(
        finals.iter().all(|(_, n)| *n == 1),
        "a task completed twice: {finals:?}"
    );
    let dup: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT step_id, from_state, to_state, attempt, count(*)
                                 FROM tasker.step_transitions GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(dup, 0, "some step transition happened twice");
    let processors: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT processor_id) FROM tasker.step_transitions WHERE event = 'claim'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(processors, 2, "both workers should have claimed steps");
}

const SLOW: &str = r#"
namespace: proc
name: slow
version: 1.0.0
steps:
  - { name: nap, handler: { name: demo.sleep, config: { ms: 2500 } }, retry: { max_attempts: 3 } }
  - { name: after, handler: { name: demo.sleep, config: { ms: 1 } }, depends_on: [nap] }
"#;

#[sqlx::test(migrations = false)]
async fn a_sigkilled_workers_step_runs_again_after_its_lease(pool: PgPool) {
    setup(&pool, SLOW).await;
    let _server = Proc::start(&pool, &["server"]);
    let mut doomed = Proc::start(&pool, &["worker", "--namespace", "proc"]);
    let cache = TemplateCache::default();
    let wakeups = Wakeups::new(&pool);
    let task = create(&wakeups, &cache, "slow", json!({ "value": 1 })).await;

    // Wait until the doomed worker runs the sleeping step, then kill it.
    wait_until_running(&pool, task, "nap").await;
    let killed_at = Instant::now();
    doomed.sigkill();
    let _rescuer = Proc::start(&pool, &["worker", "--namespace", "proc"]);

    let wakeups = Wakeups::new(&pool);
    let watcher = TaskWatcher::start(&wakeups).await.unwrap();
    let state = watcher.wait(task, Duration::from_secs(60)).await.unwrap();
    let d = store::task::detail(&pool, task).await.unwrap();
    assert_eq!(state, TaskState::Complete, "{:#?}", d.steps);
    let nap = d.steps.iter().find(|s| s.name == "nap").unwrap();
    assert_eq!(nap.attempts, 2, "the killed attempt counts");
    assert_eq!(nap.result.as_ref().unwrap()["attempt"], 2);
    let reclaimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.step_transitions WHERE step_id = $1 AND event = 'lease_expired_reclaim'",
    )
    .bind(nap.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reclaimed, 1);
    // The lease (5 s in the test environment) had to run out first.
    assert!(
        killed_at.elapsed() >= Duration::from_secs(3),
        "rerun came before the lease could expire"
    );
}

#[sqlx::test(migrations = false)]
async fn sigterm_lets_a_worker_finish_its_running_step(pool: PgPool) {
    setup(&pool, SLOW).await;
    let _server = Proc::start(&pool, &["server"]);
    let mut worker = Proc::start(&pool, &["worker", "--namespace", "proc"]);
    let cache = TemplateCache::default();
    let wakeups = Wakeups::new(&pool);
    let task = create(&wakeups, &cache, "slow", json!({ "value": 1 })).await;
    wait_until_running(&pool, task, "nap").await;
    worker.sigterm(); // graceful: the 2.5 s step is within the 5 s grace
    let d = store::task::detail(&pool, task).await.unwrap();
    let nap = d.steps.iter().find(|s| s.name == "nap").unwrap();
    assert_eq!(nap.attempts, 1);
    assert!(
        matches!(
            nap.state.as_str(),
            "enqueued_for_orchestration" | "complete"
        ),
        "the step was reported before the worker exited: {}",
        nap.state
    );
}

/// Runs a linear task with the orchestrator and worker processes in `mode`.
async fn linear_in_mode(pool: &PgPool, mode: &str) -> Duration {
    let env = [
        ("TASKER_ORCHESTRATION__MODE", mode),
        ("TASKER_WORKER__MODE", mode),
    ];
    let _server = Proc::start_with(pool, &["server"], &env);
    let _worker = Proc::start_with(pool, &["worker", "--namespace", "proc"], &env);
    let wakeups = Wakeups::new(pool);
    let watcher = TaskWatcher::start(&wakeups).await.unwrap();
    let cache = TemplateCache::default();
    // Let both processes start listening before the task exists.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let task = create(&wakeups, &cache, "linear", json!({ "value": 2 })).await;
    assert_eq!(
        watcher.wait(task, Duration::from_secs(30)).await.unwrap(),
        TaskState::Complete
    );
    let d = store::task::detail(pool, task).await.unwrap();
    let last = d.steps.iter().find(|s| s.name == "d").unwrap();
    assert_eq!(last.result, Some(json!({ "value": 25 })));
    started.elapsed()
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

#[sqlx::test(migrations = false)]
async fn event_driven_processes_wake_each_other_through_notify(pool: PgPool) {
    setup(&pool, LINEAR).await;
    // No polling at all: only NOTIFYs between processes can move the task.
    let took = linear_in_mode(&pool, "event_driven").await;
    assert!(
        took < Duration::from_secs(5),
        "event-driven run took {took:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn polling_processes_complete_without_notifications(pool: PgPool) {
    setup(&pool, LINEAR).await;
    let took = linear_in_mode(&pool, "polling").await;
    // 4 steps x 2 hops, each waiting at most one poll interval (test env: 50 ms
    // worker, 200 ms orchestrator).
    assert!(took < Duration::from_secs(10), "polling run took {took:?}");
}

/// The README's flow for a new user, through the CLI and the HTTP API: a key,
/// the example templates, a task created, watched to the end, listed, shown;
/// a WASM component uploaded, listed and deleted.
#[sqlx::test(migrations = false)]
async fn the_cli_flow_of_the_readme(pool: PgPool) {
    migrated(&pool).await;
    let port = 20000 + (std::process::id() % 20000) as u16;
    let url = format!("http://127.0.0.1:{port}");
    let bind = format!("127.0.0.1:{port}");
    let db = db_url(&pool);
    let base = [
        ("TASKER_ENV", "test"),
        ("TASKER_DATABASE__URL", db.as_str()),
    ];
    let key = admin_key(&pool, "readme");
    let _server = Proc::start_with(&pool, &["server"], &[("TASKER_WEB__BIND", bind.as_str())]);
    let _worker = Proc::start(&pool, &["worker", "--namespace", "demo"]);
    let env = [
        ("TASKER_ENV", "test"),
        ("TASKER_DATABASE__URL", db.as_str()),
        ("TASKER_CLIENT__URL", url.as_str()),
        ("TASKER_CLIENT__API_KEY", key.as_str()),
    ];
    // Wait for the API.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the API never came up on {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let root = examples_dir();
    let applied = cli(&env, &["template", "apply", root.to_str().unwrap()]);
    assert!(applied.contains("demo/diamond/1.0.0"), "{applied}");
    let id = cli(
        &env,
        &[
            "task",
            "create",
            "--namespace",
            "demo",
            "--name",
            "diamond",
            "--context",
            r#"{"value": 3}"#,
        ],
    );
    let id = id
        .trim()
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(Uuid::parse_str(&id).is_ok(), "task create printed {id}");
    let watched = cli(&env, &["task", "watch", &id]);
    assert!(watched.contains("complete"), "{watched}");
    let listed = cli(&env, &["task", "list", "--json"]);
    assert!(listed.contains(&id), "{listed}");
    let shown = cli(&env, &["task", "get", &id, "--json"]);
    let detail: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(detail["state"], "complete");
    assert_eq!(detail["steps"].as_array().unwrap().len(), 4);

    // Components: `tasker component`. A script of before the rename still
    // works: `--permissions handlers:write` (stored as `components:write`)
    // and `tasker handler ...` (a hidden alias).
    let help = cli(&base, &["--help"]);
    let commands: Vec<&str> = help
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        commands.contains(&"component") && !commands.contains(&"handler"),
        "{help}"
    );
    let uploader_out = cli(
        &base,
        &[
            "apikey",
            "create",
            "uploader",
            "--permissions",
            "handlers:write,tasks:read",
        ],
    );
    let uploader = uploader_out
        .lines()
        .find(|l| l.starts_with("tk_"))
        .expect("a key")
        .to_string();
    let keys: serde_json::Value =
        serde_json::from_str(&cli(&base, &["apikey", "list", "--json"])).unwrap();
    let row = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "uploader")
        .expect("the uploader key");
    assert_eq!(
        row["permissions"],
        json!(["components:write", "tasks:read"])
    );
    let env = [
        ("TASKER_ENV", "test"),
        ("TASKER_DATABASE__URL", db.as_str()),
        ("TASKER_CLIENT__URL", url.as_str()),
        ("TASKER_CLIENT__API_KEY", uploader.as_str()),
    ];
    let wasm = wasm_examples_dir().join("noop_rust.wasm");
    let uploaded = cli(
        &env,
        &[
            "component",
            "upload",
            wasm.to_str().unwrap(),
            "--name",
            "noop",
            "--version",
            "1.0.0",
        ],
    );
    assert!(uploaded.starts_with("uploaded noop@1.0.0"), "{uploaded}");
    for command in ["component", "handler"] {
        let listed: serde_json::Value =
            serde_json::from_str(&cli(&env, &[command, "list", "--json"])).unwrap();
        assert_eq!(
            listed["components"][0]["name"], "noop",
            "{command}: {listed}"
        );
    }
    let deleted = cli(&env, &["component", "delete", "noop", "1.0.0"]);
    assert!(deleted.contains("deleted noop@1.0.0"), "{deleted}");
}
