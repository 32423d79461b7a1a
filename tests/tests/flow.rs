//! Flow control with separate processes (`tasker server`, `tasker worker`,
//! the CLI) against one real PostgreSQL: high-priority tasks overtake a
//! backlog; a sleep step wakes on time after every process was SIGKILLed
//! and started again during the sleep; a signal step completes only on the
//! signal sent with `tasker signal send`, and another times out.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use tasker_store::template::TemplateCache;
use tasker_testkit::{eventually, migrated, new_task, register_inline};
use uuid::Uuid;

mod common;
use common::{admin_key, cli, free_port, Proc};

const ONE_STEP: &str = r#"
namespace: flow
name: one
version: 1.0.0
steps:
  - { name: only, handler: { name: demo.sleep, config: { ms: 1 } } }
"#;

const WAITS: &str = r#"
namespace: flow
name: waits
version: 1.0.0
steps:
  - { name: nap, sleep: 4s }
  - name: approval
    wait_for: { signal: approved, timeout: 1h }
  - { name: after, handler: { name: demo.sleep, config: { ms: 1 } }, depends_on: [nap, approval] }
"#;

const EXPIRING: &str = r#"
namespace: flow
name: expiring
version: 1.0.0
steps:
  - name: approval
    wait_for: { signal: approved, timeout: 2s }
"#;

async fn create_many(pool: &PgPool, name: &str, n: usize, priority: i32) -> Vec<Uuid> {
    let cache = TemplateCache::default();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = new_task("flow", name, json!({}));
        req.priority = priority;
        let (created, _) = tasker_store::task::create(pool, &cache, &req, "test")
            .await
            .unwrap();
        ids.push(created.task_id);
    }
    ids
}

async fn complete_among(pool: &PgPool, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM tasker.tasks WHERE id = ANY ($1) AND state = 'complete'",
    )
    .bind(ids)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn state_of(pool: &PgPool, task: Uuid) -> String {
    sqlx::query_scalar("SELECT state FROM tasker.tasks WHERE id = $1")
        .bind(task)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn workers_up(pool: &PgPool, n: i64) {
    let up = eventually(Duration::from_secs(30), || async {
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasker.workers WHERE stopped_at IS NULL AND 'flow' = ANY (pools)
                AND last_heartbeat_at > now() - interval '10 seconds'",
        )
        .fetch_one(pool)
        .await
        .unwrap_or(0);
        live >= n
    })
    .await;
    assert!(up, "{n} worker processes did not register");
}

#[sqlx::test(migrations = false)]
async fn high_priority_tasks_overtake_a_backlog_of_5000_across_processes(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, ONE_STEP).await;
    let low = create_many(&pool, "one", 5_000, 0).await;
    let _server = Proc::start(&pool, &["server"]);
    let _workers = [
        Proc::start(&pool, &["worker", "--namespace", "flow"]),
        Proc::start(&pool, &["worker", "--namespace", "flow"]),
    ];
    workers_up(&pool, 2).await;
    let started = eventually(Duration::from_secs(60), || async {
        complete_among(&pool, &low).await >= 100
    })
    .await;
    assert!(started, "the backlog does not start");
    let submitted = Instant::now();
    let high = create_many(&pool, "one", 20, 3_600).await;
    let done = eventually(Duration::from_secs(60), || async {
        complete_among(&pool, &high).await == 20
    })
    .await;
    assert!(done, "the high-priority tasks did not finish");
    let took = submitted.elapsed();
    let low_done = complete_among(&pool, &low).await;
    assert!(
        low_done < 4_000,
        "the 20 high-priority tasks finished only after {low_done} of 5000 low ones ({took:?})"
    );
    let drained = eventually(Duration::from_secs(180), || async {
        complete_among(&pool, &low).await == 5_000
    })
    .await;
    assert!(drained, "the backlog did not drain");
    eprintln!("processes: 20 high-priority tasks done {took:?} after submission, {low_done}/5000 low ones by then");
}

#[sqlx::test(migrations = false)]
async fn a_sleep_wakes_on_time_after_every_process_was_killed_and_a_signal_comes_from_the_cli(
    pool: PgPool,
) {
    migrated(&pool).await;
    register_inline(&pool, WAITS).await;
    register_inline(&pool, EXPIRING).await;
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let env = [("TASKER_WEB__BIND", bind.as_str())];
    let mut server = Proc::start_with(&pool, &["server"], &env);
    let mut worker = Proc::start(&pool, &["worker", "--namespace", "flow"]);
    workers_up(&pool, 1).await;

    let began = Instant::now();
    let task = create_many(&pool, "waits", 1, 0).await[0];
    let expiring = create_many(&pool, "expiring", 1, 0).await[0];
    // Every process dies during the sleep, and comes back before it ends.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    server.sigkill();
    worker.sigkill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let _server = Proc::start_with(&pool, &["server"], &env);
    let _worker = Proc::start(&pool, &["worker", "--namespace", "flow"]);

    let nap_done = eventually(Duration::from_secs(30), || async {
        let s: String = sqlx::query_scalar(
            "SELECT state FROM tasker.steps WHERE task_id = $1 AND name = 'nap'",
        )
        .bind(task)
        .fetch_one(&pool)
        .await
        .unwrap();
        s == "complete"
    })
    .await;
    let woke_after = began.elapsed();
    assert!(nap_done, "the sleep step never woke");
    assert!(
        woke_after >= Duration::from_secs(4) && woke_after < Duration::from_secs(8),
        "a 4 s sleep woke after {woke_after:?}"
    );
    eprintln!("processes: a 4 s sleep, every process SIGKILLed at 1 s and restarted at 2.5 s, woke after {woke_after:?}");
    // Without its signal the task does not finish...
    assert_eq!(state_of(&pool, task).await, "steps_in_process");
    // ... the other one's signal never comes: it times out.
    let timed_out = eventually(Duration::from_secs(20), || async {
        state_of(&pool, expiring).await == "blocked_by_failures"
    })
    .await;
    assert!(
        timed_out,
        "the unsignalled wait did not time out: {}",
        state_of(&pool, expiring).await
    );

    // The signal, with the CLI through the restarted server's API.
    let key = admin_key(&pool, "flow");
    let up = eventually(Duration::from_secs(30), || async {
        std::net::TcpStream::connect(bind.as_str()).is_ok()
    })
    .await;
    assert!(up, "the restarted server never listened");
    let url = format!("http://{bind}");
    let task_arg = task.to_string();
    cli(
        &[("TASKER_ENV", "test")],
        &[
            "--api",
            &url,
            "--api-key",
            &key,
            "signal",
            "send",
            &task_arg,
            "approved",
            "--payload",
            r#"{"by":"ops"}"#,
        ],
    );
    let finished = eventually(Duration::from_secs(30), || async {
        state_of(&pool, task).await == "complete"
    })
    .await;
    assert!(
        finished,
        "the signalled task did not finish: {}",
        state_of(&pool, task).await
    );
    let approval: serde_json::Value = sqlx::query_scalar(
        "SELECT result FROM tasker.steps WHERE task_id = $1 AND name = 'approval'",
    )
    .bind(task)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(approval, json!({"by": "ops"}));
}
