//! Concurrency limits by key in the store (`docs/flow-control.md`,
//! "Concurrency limits"): held steps get no message, a freed slot admits the
//! next, racing admissions never exceed the limit, template limits queue.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::step::{Outcome, StepResultMessage};
use tasker_store::step::{claim_batch, report, Claimed, Serves};
use tasker_store::take::take_batch;
use tasker_store::task;
use tasker_store::template::TemplateCache;
use tasker_testkit::{migrated, new_task, register_inline};

const STEP_QUEUE: &str = "steps_cc";

/// One step `a` (limit 1 per `input.customer`), then `b` (no limit).
const STEP_LIMITED: &str = "namespace: cc\nname: keyed\nversion: 1.0.0\nsteps:\n\
  - { name: a, handler: { name: h }, concurrency: { key: input.customer, limit: 1 } }\n\
  - { name: b, handler: { name: h }, depends_on: [a] }\n";

/// A template limit of 1 per `input.customer` (strategy queue).
const TASK_LIMITED: &str = "namespace: cc\nname: whole\nversion: 1.0.0\n\
  concurrency: { key: input.customer, limit: 1 }\nsteps:\n\
  - { name: a, handler: { name: h } }\n\
  - { name: b, handler: { name: h }, depends_on: [a] }\n";

async fn create(pool: &PgPool, name: &str, customer: &str) -> Uuid {
    let req = new_task("cc", name, json!({ "customer": customer }));
    let (created, _) = task::create(pool, &TemplateCache::default(), &req, "t")
        .await
        .unwrap();
    created.task_id
}

async fn claim(pool: &PgPool) -> Vec<Claimed> {
    claim_batch(pool, STEP_QUEUE, 30, 100, "w", Serves::ANY)
        .await
        .unwrap()
}

/// (task, step name) of each claimed step.
async fn claimed_names(pool: &PgPool, claimed: &[Claimed]) -> Vec<(Uuid, String)> {
    let mut out = Vec::new();
    for c in claimed {
        let ctx = c.step.as_ref().expect("runnable");
        let name: String = sqlx::query_scalar("SELECT name FROM tasker.steps WHERE id = $1")
            .bind(ctx.step_id)
            .fetch_one(pool)
            .await
            .unwrap();
        out.push((ctx.task_id, name));
    }
    out
}

/// Reports success for `c` and takes the results (the orchestrator's part).
async fn complete(pool: &PgPool, c: &Claimed) {
    let ctx = c.step.as_ref().expect("runnable");
    let msg = StepResultMessage {
        step_id: ctx.step_id,
        task_id: ctx.task_id,
        attempt: 1,
        outcome: Outcome::success(Value::Null),
        worker_id: "w".into(),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        traceparent: None,
    };
    let _changed = report(pool, STEP_QUEUE, c.msg_id, &msg, "w").await.unwrap();
    let _taken = take_batch(pool, 30, 100, "o").await.unwrap();
}

async fn held(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM tasker.steps
          WHERE concurrency_group IS NOT NULL AND state = 'pending' AND pending_parents = 0",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn limit_one_per_key_admits_one_per_key_and_the_next_when_it_completes(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, STEP_LIMITED).await;
    let a1 = create(&pool, "keyed", "A").await;
    let a2 = create(&pool, "keyed", "A").await;
    let a3 = create(&pool, "keyed", "A").await;
    let b1 = create(&pool, "keyed", "B").await;
    let first = claim(&pool).await;
    let names = claimed_names(&pool, &first).await;
    assert_eq!(
        names,
        vec![(a1, "a".to_string()), (b1, "a".to_string())],
        "one root of key A (the oldest) and the root of key B"
    );
    assert_eq!(held(&pool).await, 2, "a2 and a3 are held, with no message");
    let attempts: i64 =
        sqlx::query_scalar("SELECT sum(attempts) FROM tasker.steps WHERE task_id = ANY ($1)")
            .bind(vec![a2, a3])
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 0, "held steps spend no attempt");

    // a1's `a` completes: its child `b` (unlimited) and a2's `a` are next.
    complete(&pool, &first[0]).await;
    let next = claim(&pool).await;
    let mut names = claimed_names(&pool, &next).await;
    names.sort();
    let mut want = vec![(a1, "b".to_string()), (a2, "a".to_string())];
    want.sort();
    assert_eq!(names, want);
    assert_eq!(held(&pool).await, 1, "a3 still waits");
    let event: String = sqlx::query_scalar(
        "SELECT event FROM tasker.step_transitions t JOIN tasker.steps s ON s.id = t.step_id
          WHERE s.task_id = $1 AND s.name = 'a' AND t.to_state = 'enqueued'",
    )
    .bind(a2)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(event, "admitted");
    let a2_state = tasker_testkit::task_state(&pool, a2).await;
    assert_ne!(a2_state, "error");
}

#[sqlx::test(migrations = false)]
async fn racing_admissions_never_exceed_the_limit(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: cc\nname: three\nversion: 1.0.0\nsteps:\n\
         \x20 - { name: a, handler: { name: h }, concurrency: { key: input.customer, limit: 3 } }\n",
    )
    .await;
    for _ in 0..12 {
        create(&pool, "three", "A").await;
    }
    assert_eq!(claim(&pool).await.len(), 3);
    // Free every slot behind the functions' back, then let 8 connections
    // race to admit the group at once.
    sqlx::query("UPDATE tasker.steps SET state = 'complete' WHERE state = 'in_progress'")
        .execute(&pool)
        .await
        .unwrap();
    let group = "cc/three/a:A".to_string();
    let mut racers = Vec::new();
    for i in 0..8 {
        let pool = pool.clone();
        let group = group.clone();
        racers.push(tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let queues: Vec<String> = sqlx::query_scalar("SELECT tasker.admit_held($1, $2)")
                .bind(vec![group])
                .bind(format!("racer-{i}"))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            queues.len()
        }));
    }
    let mut admitted = 0;
    for r in racers {
        admitted += r.await.unwrap();
    }
    assert_eq!(admitted, 3, "exactly the free slots were filled");
    let occupying: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.steps
          WHERE concurrency_group = $1 AND state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration')",
    )
    .bind(&group)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(occupying, 3);
}

#[sqlx::test(migrations = false)]
async fn a_template_limit_queues_whole_tasks(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, TASK_LIMITED).await;
    let t1 = create(&pool, "whole", "A").await;
    let t2 = create(&pool, "whole", "A").await;
    let other = create(&pool, "whole", "B").await;
    let first = claim(&pool).await;
    let mut tasks: Vec<Uuid> = claimed_names(&pool, &first)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    tasks.sort();
    assert_eq!(tasks, vec![t1, other]);
    // t1's first step completes: its second runs, t2 still waits (the slot
    // is the whole task's).
    let c1 = first
        .iter()
        .find(|c| c.step.as_ref().map(|s| s.task_id) == Some(t1))
        .expect("t1 claimed");
    complete(&pool, c1).await;
    let second = claim(&pool).await;
    assert_eq!(
        claimed_names(&pool, &second).await,
        vec![(t1, "b".to_string())]
    );
    // A stale sweep leaves the waiting task alone.
    let stale = tasker_store::recovery::stale_tasks(&pool, std::time::Duration::ZERO, 100)
        .await
        .unwrap();
    assert!(!stale.contains(&t2), "{stale:?}");
    // t1 completes: t2 is admitted.
    complete(&pool, &second[0]).await;
    assert_eq!(tasker_testkit::task_state(&pool, t1).await, "complete");
    let third = claim(&pool).await;
    assert_eq!(
        claimed_names(&pool, &third).await,
        vec![(t2, "a".to_string())]
    );
}

#[sqlx::test(migrations = false)]
async fn cancelling_a_running_task_admits_the_next_of_its_key(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, STEP_LIMITED).await;
    let a1 = create(&pool, "keyed", "A").await;
    let a2 = create(&pool, "keyed", "A").await;
    assert_eq!(claimed_names(&pool, &claim(&pool).await).await.len(), 1);
    let actor = tasker_store::operator::Actor {
        processor_id: "op",
        reason: Some("test"),
    };
    let (_, changed) = tasker_store::operator::cancel_task(&pool, a1, actor)
        .await
        .unwrap();
    assert!(
        changed.queues.contains(&STEP_QUEUE.to_string()),
        "{changed:?}"
    );
    let next = claim(&pool).await;
    assert_eq!(
        claimed_names(&pool, &next).await,
        vec![(a2, "a".to_string())]
    );
}

#[sqlx::test(migrations = false)]
async fn the_sweep_admits_what_no_path_admitted(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, STEP_LIMITED).await;
    let _a1 = create(&pool, "keyed", "A").await;
    let a2 = create(&pool, "keyed", "A").await;
    assert_eq!(claim(&pool).await.len(), 1);
    // The running step leaves its slot behind the functions' back (as if the
    // admission that should follow were lost).
    sqlx::query("UPDATE tasker.steps SET state = 'complete' WHERE state = 'in_progress'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(claim(&pool).await.is_empty(), "nothing admitted yet");
    let (swept, changed) = tasker_store::concurrency::sweep(&pool, 100, "sweeper")
        .await
        .unwrap();
    assert_eq!(swept.enqueued, 1);
    assert_eq!(changed.queues, vec![STEP_QUEUE.to_string()]);
    let next = claim(&pool).await;
    assert_eq!(
        claimed_names(&pool, &next).await,
        vec![(a2, "a".to_string())]
    );
    let (again, _) = tasker_store::concurrency::sweep(&pool, 100, "sweeper")
        .await
        .unwrap();
    assert_eq!(again.enqueued, 0, "the group is full again");
}

#[sqlx::test(migrations = false)]
async fn a_delayed_start_holds_no_slot_before_it_is_due(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, STEP_LIMITED).await;
    let start = task::Start {
        run_at: None,
        delay_seconds: Some(3600),
    };
    let req = new_task("cc", "keyed", json!({ "customer": "A" }));
    let (delayed, _) = task::create_at(&pool, &TemplateCache::default(), &req, &start, "t")
        .await
        .unwrap();
    let now = create(&pool, "keyed", "A").await;
    let claimed = claim(&pool).await;
    assert_eq!(
        claimed_names(&pool, &claimed).await,
        vec![(now, "a".to_string())],
        "the task due now runs; the delayed one waits without a slot"
    );
    let state: String =
        sqlx::query_scalar("SELECT state FROM tasker.steps WHERE task_id = $1 AND name = 'a'")
            .bind(delayed.task_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "pending");
}
