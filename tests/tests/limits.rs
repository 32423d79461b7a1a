//! A rate limit across processes: a `tasker server` and two `tasker worker`
//! processes (the binary of this build) against one real PostgreSQL share a
//! 10/s limit, set with `tasker limit set` through the API. The steps'
//! starts (their `in_progress` transitions) never exceed 10 in a second,
//! plus one for the bucket's edge, and every task completes.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use tasker_model::state::TaskState;
use tasker_notify::watch::TaskWatcher;
use tasker_notify::Wakeups;
use tasker_store::template::TemplateCache;
use tasker_testkit::{eventually, migrated, new_task, register_inline};

mod common;
use common::{admin_key, cli, db_url, Proc};

const PACED: &str = r#"
namespace: rl
name: paced
version: 1.0.0
steps:
  - { name: call, handler: { name: demo.sleep, config: { ms: 1 } }, rate_limit: { name: ten } }
"#;

const TASKS: usize = 60;

#[sqlx::test(migrations = false)]
async fn a_10_per_second_limit_shared_by_two_worker_processes_holds(pool: PgPool) {
    shared_limit(&pool, 40000, "hybrid").await;
}

/// Event-driven workers never poll: a deferred step starts because the
/// worker that deferred it reads again when its turn comes.
#[sqlx::test(migrations = false)]
async fn deferred_steps_start_without_polling(pool: PgPool) {
    shared_limit(&pool, 20000, "event_driven").await;
}

/// Two worker processes in `mode`, a server on a port from `base`, 60 tasks
/// of a step limited to 10/s.
async fn shared_limit(pool: &PgPool, base: u16, mode: &str) {
    let pool = pool.clone();
    migrated(&pool).await;
    register_inline(&pool, PACED).await;
    let port = base + (std::process::id() % 20000) as u16;
    let url = format!("http://127.0.0.1:{port}");
    let bind = format!("127.0.0.1:{port}");
    let db = db_url(&pool);
    let key = admin_key(&pool, "limits");
    let _server = Proc::start_with(&pool, &["server"], &[("TASKER_WEB__BIND", bind.as_str())]);
    let worker_env = [("TASKER_WORKER__MODE", mode)];
    let _workers = [
        Proc::start_with(&pool, &["worker", "--namespace", "rl"], &worker_env),
        Proc::start_with(&pool, &["worker", "--namespace", "rl"], &worker_env),
    ];
    let env = [
        ("TASKER_ENV", "test"),
        ("TASKER_DATABASE__URL", db.as_str()),
        ("TASKER_CLIENT__URL", url.as_str()),
        ("TASKER_CLIENT__API_KEY", key.as_str()),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the API never came up on {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let set = cli(&env, &["limit", "set", "ten", "--rate", "10/s"]);
    assert!(set.contains("limit ten set: 10/s, burst 1"), "{set}");
    let listed = cli(&env, &["limit", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["limits"][0]["per_second"], json!(10.0), "{listed}");
    let both_up = eventually(Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasker.workers WHERE stopped_at IS NULL AND 'rl' = ANY (pools)",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        n >= 2
    })
    .await;
    assert!(both_up, "the worker processes did not register");

    let wakeups = Wakeups::new(&pool);
    let watcher = TaskWatcher::start(&wakeups).await.unwrap();
    let cache = TemplateCache::default();
    let mut ids = Vec::new();
    for _ in 0..TASKS {
        let (created, changed) =
            tasker_store::task::create(&pool, &cache, &new_task("rl", "paced", json!({})), "test")
                .await
                .unwrap();
        wakeups.announce(&changed);
        ids.push(created.task_id);
    }
    for id in &ids {
        assert_eq!(
            watcher.wait(*id, Duration::from_secs(60)).await.unwrap(),
            TaskState::Complete,
            "task {id}"
        );
    }

    let starts: Vec<(DateTime<Utc>, Option<String>)> = sqlx::query_as(
        "SELECT created_at, processor_id FROM tasker.step_transitions
          WHERE to_state = 'in_progress' ORDER BY created_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(starts.len(), TASKS, "each step started once");
    let times: Vec<DateTime<Utc>> = starts.iter().map(|(t, _)| *t).collect();
    let window = chrono::Duration::seconds(1);
    let busiest = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t < times[i] + window)
                .count()
        })
        .max()
        .unwrap_or(0);
    let span = (times[times.len() - 1] - times[0]).num_milliseconds() as f64 / 1000.0;
    let workers: std::collections::BTreeSet<_> = starts.iter().map(|(_, p)| p.clone()).collect();
    eprintln!(
        "{mode}: {TASKS} starts in {span:.2} s ({:.2}/s overall), busiest 1-second window: {busiest}, \
         by {} workers",
        (TASKS - 1) as f64 / span,
        workers.len()
    );
    assert!(busiest <= 11, "{busiest} starts in one second");
    assert!(span >= 5.5, "{TASKS} starts at 10/s took only {span} s");
    assert_eq!(workers.len(), 2, "both worker processes started steps");

    let shown = cli(&env, &["limit", "show", "ten"]);
    assert!(shown.contains("10/s"), "{shown}");
    let deleted = cli(&env, &["limit", "delete", "ten"]);
    assert!(deleted.contains("limit ten deleted"), "{deleted}");
}
