//! A concurrency limit across processes (`docs/flow-control.md`,
//! "Concurrency limits"): two `tasker server` processes (two orchestrators
//! admitting) and two `tasker worker` processes (the binary of this build)
//! against one real PostgreSQL run 20 tasks of a step limited to 1 per key,
//! 10 of key A and 10 of key B. From the audit timestamps: no two runs of one
//! key ever overlap, while keys A and B run in parallel; every task completes
//! with one attempt per step.

use std::collections::BTreeMap;
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
use common::Proc;

/// One run: key, start, end, the worker that claimed it, the step's attempts.
type Run = (String, DateTime<Utc>, DateTime<Utc>, Option<String>, i32);
/// (start, end) of runs.
type Spans = Vec<(DateTime<Utc>, DateTime<Utc>)>;

const KEYED: &str = r#"
namespace: cc
name: keyed
version: 1.0.0
steps:
  - name: work
    handler: { name: demo.sleep, config: { ms: 100 } }
    concurrency: { key: input.customer, limit: 1 }
"#;

#[sqlx::test(migrations = false)]
async fn limit_one_per_key_holds_across_two_servers_and_two_worker_processes(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, KEYED).await;
    let port = 30000 + (std::process::id() % 20000) as u16;
    let binds = [
        format!("127.0.0.1:{port}"),
        format!("127.0.0.1:{}", port + 1),
    ];
    let _servers: Vec<Proc> = binds
        .iter()
        .map(|b| Proc::start_with(&pool, &["server"], &[("TASKER_WEB__BIND", b.as_str())]))
        .collect();
    let _workers = [
        Proc::start_with(&pool, &["worker", "--namespace", "cc"], &[]),
        Proc::start_with(&pool, &["worker", "--namespace", "cc"], &[]),
    ];
    let both_up = eventually(Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasker.workers WHERE stopped_at IS NULL AND 'cc' = ANY (pools)",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        n >= 2
    })
    .await;
    assert!(both_up, "the worker processes did not register");
    let deadline = Instant::now() + Duration::from_secs(30);
    for b in &binds {
        while std::net::TcpStream::connect(b.as_str()).is_err() {
            assert!(Instant::now() < deadline, "the server never came up on {b}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let wakeups = Wakeups::new(&pool);
    let watcher = TaskWatcher::start(&wakeups).await.unwrap();
    let cache = TemplateCache::default();
    let began = Instant::now();
    let mut ids = Vec::new();
    for i in 0..20 {
        let key = if i % 2 == 0 { "A" } else { "B" };
        let req = new_task("cc", "keyed", json!({ "customer": key }));
        let (created, changed) = tasker_store::task::create(&pool, &cache, &req, "test")
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
    let elapsed = began.elapsed();

    // Each run: its claim (→ in_progress) and its report (in_progress → …).
    let rows: Vec<Run> = sqlx::query_as(
        "SELECT t.context->>'customer', a.created_at,
                (SELECT min(x.created_at) FROM tasker.step_transitions x
                  WHERE x.step_id = s.id AND x.attempt = a.attempt
                    AND x.from_state = 'in_progress'),
                a.processor_id, s.attempts
           FROM tasker.steps s JOIN tasker.tasks t ON t.id = s.task_id
           JOIN tasker.step_transitions a ON a.step_id = s.id AND a.to_state = 'in_progress'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 20, "each step ran once");
    assert!(rows.iter().all(|r| r.4 == 1), "waiting spent no attempt");
    let mut by_key: BTreeMap<&str, Spans> = BTreeMap::new();
    for (key, start, end, _, _) in &rows {
        by_key.entry(key.as_str()).or_default().push((*start, *end));
    }
    for (key, runs) in by_key.iter_mut() {
        runs.sort();
        assert_eq!(runs.len(), 10, "key {key}");
        for pair in runs.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "two runs of key {key} overlap: {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
    }
    let overlapping = by_key["A"]
        .iter()
        .flat_map(|a| by_key["B"].iter().map(move |b| (a, b)))
        .filter(|(a, b)| a.0 < b.1 && b.0 < a.1)
        .count();
    let workers: std::collections::BTreeSet<_> = rows.iter().map(|r| r.3.clone()).collect();
    let admitters: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT DISTINCT processor_id FROM tasker.step_transitions WHERE event = 'admitted'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    eprintln!(
        "20 tasks in {elapsed:?}; overlapping A/B run pairs: {overlapping}; \
         worker processes used: {}; processes that admitted: {}",
        workers.len(),
        admitters.len()
    );
    assert!(overlapping > 0, "keys A and B ran in parallel");
    assert_eq!(workers.len(), 2, "both worker processes ran steps");
}
