//! Routing steps to worker pools, and the worker registry: a step's message
//! reaches only the workers of its pool; a worker without a step's handler
//! never claims it (no attempt spent) and hands back one it claimed; a step
//! no live worker serves ends in error after the configured time; workers
//! register, heartbeat and deregister.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::state::TaskState;
use tasker_store::step::{claim_batch, hand_back, Serves};
use tasker_store::worker;
use tasker_testkit::{migrated, register_inline, Stack};
use tasker_worker::handler::rust::handler_fn;
use tasker_worker::handler::HandlerRegistry;

/// A registry with handlers named `names`, each answering `{"by": <name>}`.
fn answering(names: &[&'static str]) -> HandlerRegistry {
    let r = HandlerRegistry::new();
    for &name in names {
        r.register(
            name,
            handler_fn(
                move |ctx, _| async move { Ok(json!({ "by": name, "step": ctx.step_name })) },
            ),
        );
    }
    r
}

/// The worker id that reported each step of a task, by step name.
async fn reporters(pool: &PgPool, task_id: Uuid) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT s.name, r.worker_id FROM tasker.step_results r JOIN tasker.steps s ON s.id = r.step_id
          WHERE r.task_id = $1 ORDER BY s.name",
    )
    .bind(task_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The events of a step's transitions into `to`.
async fn events_into(pool: &PgPool, task_id: Uuid, to: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event FROM tasker.step_transitions WHERE task_id = $1 AND to_state = $2 ORDER BY id",
    )
    .bind(task_id)
    .bind(to)
    .fetch_all(pool)
    .await
    .unwrap()
}

const TWO_POOLS: &str = r#"
namespace: demo
name: two_pools
version: 1.0.0
pool: alpha
steps:
  - name: first
    handler: { name: h.alpha }
  - name: second
    handler: { name: h.beta }
    pool: beta
    depends_on: [first]
  - name: third
    handler: { name: h.alpha }
    depends_on: [second]
"#;

#[sqlx::test(migrations = false)]
async fn each_step_runs_on_a_worker_of_its_pool(pool: PgPool) {
    migrated(&pool).await;
    let tpl = register_inline(&pool, TWO_POOLS).await;
    assert_eq!(tpl.pools(), ["alpha", "beta"]);
    // Each stack's worker serves one pool; only the first has an orchestrator.
    let a = Stack::builder(&pool)
        .registry(answering(&["h.alpha"]))
        .worker(|w| {
            w.namespaces = vec![];
            w.pools = vec!["alpha".into()];
            w.worker_id = "alpha-worker".into();
        })
        .start()
        .await;
    let b = Stack::builder(&pool)
        .orchestrators(0)
        .registry(answering(&["h.beta"]))
        .worker(|w| {
            w.namespaces = vec![];
            w.pools = vec!["beta".into()];
            w.worker_id = "beta-worker".into();
        })
        .start()
        .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(a.create("two_pools", json!({ "i": i })).await);
    }
    for id in &ids {
        assert_eq!(a.wait(*id).await, TaskState::Complete);
        let by: Vec<(String, String)> = reporters(&pool, *id)
            .await
            .into_iter()
            .map(|(step, w)| {
                let pool = w.split('-').next().unwrap_or_default().to_string();
                (step, pool)
            })
            .collect();
        assert_eq!(
            by,
            [
                ("first".to_string(), "alpha".to_string()),
                ("second".into(), "beta".into()),
                ("third".into(), "alpha".into())
            ]
        );
    }
    // Nothing was handed back or failed on the way.
    for id in &ids {
        assert!(events_into(&pool, *id, "error").await.is_empty());
        assert!(!events_into(&pool, *id, "enqueued")
            .await
            .contains(&"handed_back".to_string()));
    }
    b.stop().await;
    a.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_worker_without_the_handler_leaves_the_step_for_one_that_has_it(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: only_y\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: h.y }\n",
    )
    .await;
    // The first worker reads the step's queue but has only h.x.
    let x = Stack::builder(&pool)
        .registry(answering(&["h.x"]))
        .worker(|w| w.worker_id = "x-worker".into())
        .start()
        .await;
    let id = x.create("only_y", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let steps = x.steps(id).await;
    let only = &steps["only"];
    assert_eq!((only.state.as_str(), only.attempts), ("enqueued", 0));
    // A worker that has h.y arrives and runs it, first try.
    let y = Stack::builder(&pool)
        .orchestrators(0)
        .registry(answering(&["h.y"]))
        .worker(|w| w.worker_id = "y-worker".into())
        .start()
        .await;
    assert_eq!(x.wait(id).await, TaskState::Complete);
    let only = &x.steps(id).await["only"];
    assert_eq!(only.attempts, 1);
    assert_eq!(only.result, Some(json!({ "by": "h.y", "step": "only" })));
    assert_eq!(
        reporters(&pool, id).await,
        [("only".to_string(), "y-worker-0".to_string())]
    );
    y.stop().await;
    x.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_claimed_step_handed_back_keeps_its_attempts(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: one\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: h.z }\n",
    )
    .await;
    let h = Stack::builder(&pool).workers(0).start().await;
    let id = h.create("one", json!({})).await;
    let claimed = claim_batch(&pool, "steps_demo", 30, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    let ctx = claimed[0].step.clone().unwrap();
    assert_eq!(ctx.attempt, 1);
    let back = hand_back(
        &pool,
        "steps_demo",
        claimed[0].msg_id,
        ctx.step_id,
        ctx.attempt,
        Duration::ZERO,
        "w1",
    )
    .await
    .unwrap();
    assert!(back);
    let only = &h.steps(id).await["only"];
    assert_eq!((only.state.as_str(), only.attempts), ("enqueued", 0));
    assert_eq!(
        events_into(&pool, id, "enqueued").await.last().unwrap(),
        "handed_back"
    );
    // The message is visible again: the next claim gets the same step as attempt 1.
    let again = claim_batch(&pool, "steps_demo", 30, 10, "w2", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(again[0].step.as_ref().unwrap().attempt, 1);
    // A hand-back of an attempt that is no longer current changes nothing.
    assert!(!hand_back(
        &pool,
        "steps_demo",
        again[0].msg_id,
        ctx.step_id,
        7,
        Duration::ZERO,
        "w2"
    )
    .await
    .unwrap());
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_step_no_live_worker_serves_ends_after_the_timeout(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: missing\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: nope.missing }\n    retry: { max_attempts: 3, backoff: none }\n",
    )
    .await;
    let h = Stack::builder(&pool)
        .config(|c| c.orchestration.unserved_step_timeout_seconds = 2)
        .start()
        .await;
    let started = std::time::Instant::now();
    let id = h.create("missing", json!({})).await;
    assert_eq!(h.wait(id).await, TaskState::BlockedByFailures);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "ended after {waited:?}");
    let only = h.steps(id).await.remove("only").unwrap();
    assert_eq!((only.state.as_str(), only.attempts), ("error", 0));
    let err = only.last_error.unwrap();
    assert_eq!(err["kind"], "no_worker");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("'nope.missing'") && message.contains("pool 'demo'"),
        "{message}"
    );
    // No worker ever claimed it.
    assert!(events_into(&pool, id, "in_progress").await.is_empty());
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn workers_register_heartbeat_and_deregister(pool: PgPool) {
    migrated(&pool).await;
    let tpl = register_inline(&pool, TWO_POOLS).await;
    let h = Stack::builder(&pool)
        .orchestrators(0)
        .registry(answering(&["h.alpha"]))
        .worker(|w| {
            w.pools = vec!["alpha".into()];
            w.worker_id = "reg".into();
            w.registry_heartbeat = Duration::from_secs(1);
        })
        .start()
        .await;
    assert!(
        tasker_testkit::eventually(Duration::from_secs(5), || async {
            !worker::list(&pool, false).await.unwrap().is_empty()
        })
        .await
    );
    let live = worker::list(&pool, false).await.unwrap();
    let w = &live[0];
    assert_eq!(w.id, "reg-0");
    assert_eq!(w.status, "live");
    assert_eq!(w.runtime, "rust");
    assert_eq!(w.pools, ["demo", "alpha"]);
    assert_eq!(w.handlers, ["h.alpha"]);
    assert!(!w.runs_components);
    assert_eq!(w.pid, std::process::id() as i32);
    // h.beta (pool beta) has no live worker; h.alpha has one.
    let unserved = worker::unserved(&pool, &tpl).await.unwrap();
    assert_eq!(
        unserved
            .iter()
            .map(|u| (u.step.as_str(), u.pool.as_str()))
            .collect::<Vec<_>>(),
        [("second", "beta")]
    );
    h.stop().await;
    let all = worker::list(&pool, true).await.unwrap();
    assert_eq!(all[0].status, "stopped");
    assert!(worker::list(&pool, false).await.unwrap().is_empty());
    // A worker that stops heartbeating (killed) turns gone after three intervals.
    sqlx::query("UPDATE tasker.workers SET stopped_at = NULL, last_heartbeat_at = now() - interval '4 seconds'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(worker::list(&pool, true).await.unwrap()[0].status, "gone");
    assert_eq!(worker::unserved(&pool, &tpl).await.unwrap().len(), 3);
}

#[sqlx::test(migrations = false)]
async fn pools_are_validated_and_get_queues_at_registration(pool: PgPool) {
    migrated(&pool).await;
    let bad = "namespace: demo\nname: bad\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: h }\n    pool: Not-A-Pool\n";
    let err = tasker_model::template::Template::from_yaml_str(bad, "bad.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad pool `Not-A-Pool`"), "{err}");
    // The registered pool gets its queue at registration.
    register_inline(&pool, TWO_POOLS).await;
    let queues: Vec<String> =
        sqlx::query_scalar("SELECT queue_name FROM tasker.pools ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(queues, ["steps_alpha", "steps_beta", "steps_demo"]);
}
