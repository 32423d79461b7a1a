//! Traces in the store: a task keeps its submission's `traceparent` (or gets
//! a new trace), and every step message carries it in its PGMQ headers, for
//! the roots (create_task.sql) and for the steps enqueued later
//! (tasker.send_step_messages), so each claim hands it to the worker.

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::step::{Outcome, StepResultMessage};
use tasker_model::trace::Traceparent;
use tasker_store::step::{claim_batch, report, Claimed, Serves};
use tasker_store::task;
use tasker_store::template::TemplateCache;
use tasker_testkit::{migrated, new_task, register_example};

const STEP_QUEUE: &str = "steps_demo";
const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

async fn create(pool: &PgPool, traceparent: Option<&str>) -> Uuid {
    let mut req = new_task("demo", "linear", json!({"value": 3}));
    req.traceparent = traceparent.map(str::to_string);
    let (created, _) = task::create(pool, &TemplateCache::default(), &req, "t")
        .await
        .unwrap();
    created.task_id
}

async fn stored(pool: &PgPool, task: Uuid) -> String {
    sqlx::query_scalar("SELECT traceparent FROM tasker.tasks WHERE id = $1")
        .bind(task)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn claim_one(pool: &PgPool) -> Claimed {
    let mut claimed = claim_batch(pool, STEP_QUEUE, 30, 1, "w", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "one step to claim");
    claimed.remove(0)
}

#[sqlx::test(migrations = false)]
async fn every_step_message_carries_the_tasks_trace(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "linear").await;
    let task = create(&pool, Some(CALLER)).await;
    assert_eq!(stored(&pool, task).await, CALLER);
    let headers: Value = sqlx::query_scalar("SELECT headers FROM pgmq.q_steps_demo")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(headers, json!({"traceparent": CALLER}), "in PGMQ's headers");
    let bodies: Value = sqlx::query_scalar("SELECT message FROM pgmq.q_steps_demo")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        bodies.get("traceparent").is_none(),
        "not in the body: {bodies}"
    );

    // The root, then the step its result enqueues (tasker.send_step_messages).
    let root = claim_one(&pool).await;
    let ctx = root.step.as_ref().unwrap();
    assert_eq!(ctx.traceparent.as_deref(), Some(CALLER));
    let result = StepResultMessage {
        step_id: ctx.step_id,
        task_id: ctx.task_id,
        attempt: ctx.attempt,
        outcome: Outcome::success(json!({"value": 4})),
        worker_id: "w".into(),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01".into()),
    };
    let _changed = report(&pool, STEP_QUEUE, root.msg_id, &result, "w")
        .await
        .unwrap();
    let (taken, _) = tasker_store::take::take_batch(&pool, 30, 10, "o")
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let next = claim_one(&pool).await;
    let next_ctx = next.step.as_ref().unwrap();
    assert_ne!(next_ctx.step_id, ctx.step_id);
    assert_eq!(next_ctx.traceparent.as_deref(), Some(CALLER));
}

#[sqlx::test(migrations = false)]
async fn a_task_without_a_valid_traceparent_starts_its_own_trace(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "linear").await;
    let none = create(&pool, None).await;
    let garbage = create(&pool, Some("00-not-a-trace-01")).await;
    let a = Traceparent::parse(&stored(&pool, none).await).expect("a new trace");
    let b = Traceparent::parse(&stored(&pool, garbage).await).expect("a new trace");
    assert_ne!(a.trace_id, b.trace_id, "each task its own trace");
    let first = claim_one(&pool).await;
    assert_eq!(
        first.step.unwrap().traceparent.as_deref(),
        Some(a.to_string().as_str())
    );
}
