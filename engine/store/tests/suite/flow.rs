//! Flow control in the store: the claim order by priority with ageing
//! (`rank`), and pauses (`pause::pause`, `pause::resume`, `pause::repair`).

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_store::pause::{self, PauseScope};
use tasker_store::step::{claim_batch, Serves};
use tasker_store::task;
use tasker_store::template::TemplateCache;
use tasker_store::StoreError;
use tasker_testkit::{migrated, new_task, register_example};

const STEP_QUEUE: &str = "steps_demo";

async fn create(pool: &PgPool, priority: i32) -> Uuid {
    let mut req = new_task("demo", "diamond", json!({"value": 3}));
    req.priority = priority;
    let (created, _) = task::create(pool, &TemplateCache::default(), &req, "t")
        .await
        .unwrap();
    created.task_id
}

/// The tasks of the runnable steps one claim of `qty` returns, in claim order.
async fn claim(pool: &PgPool, qty: i32) -> Vec<Uuid> {
    claim_batch(pool, STEP_QUEUE, 30, qty, "w", Serves::ANY)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.step.map(|s| s.task_id))
        .collect()
}

async fn parked(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pgmq.q_steps_demo WHERE vt = 'infinity'")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn higher_priority_is_claimed_first_and_low_priority_ages(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let old_low = create(&pool, 0).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    // One second of head start does not beat 1.3 s of waiting (ageing) ...
    let newer_by_one = create(&pool, 1).await;
    // ... sixty seconds do, and so does any later task of priority 60.
    let urgent = create(&pool, 60).await;
    let later_urgent = create(&pool, 60).await;
    let newest_low = create(&pool, 0).await;
    let negative = create(&pool, -5).await;
    let mut order = Vec::new();
    for _ in 0..6 {
        order.extend(claim(&pool, 1).await);
    }
    assert_eq!(
        order,
        vec![
            urgent,
            later_urgent,
            old_low,
            newer_by_one,
            newest_low,
            negative
        ],
        "claimed by rank: enqueue second minus priority"
    );
    let idx: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'pgmq' AND indexname = 'q_steps_demo_rank_idx'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(idx, 1, "the step queue has its rank index");
}

#[sqlx::test(migrations = false)]
async fn a_paused_task_is_not_claimed_until_resumed(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let held = create(&pool, 0).await;
    let free = create(&pool, 0).await;
    let change = pause::pause(
        &pool,
        PauseScope::Task,
        &held.to_string(),
        Some("audit"),
        "op",
    )
    .await
    .unwrap();
    assert!(change.changed);
    assert_eq!(change.messages, 1, "the held task's root was parked");
    let again = pause::pause(&pool, PauseScope::Task, &held.to_string(), None, "op")
        .await
        .unwrap();
    assert!(!again.changed, "pausing twice changes nothing");
    assert!(pause::task_paused(&pool, held).await.unwrap());
    assert!(!pause::task_paused(&pool, free).await.unwrap());
    assert_eq!(claim(&pool, 10).await, vec![free]);
    assert_eq!(claim(&pool, 10).await, Vec::<Uuid>::new());

    let listed = pause::list(&pool, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reason.as_deref(), Some("audit"));
    // Listed by its task's namespace, and only by it.
    let in_demo = pause::list(&pool, Some(&["demo".to_string()]))
        .await
        .unwrap();
    assert_eq!(in_demo.len(), 1);
    let elsewhere = pause::list(&pool, Some(&["other".to_string()]))
        .await
        .unwrap();
    assert!(elsewhere.is_empty());
    let (resumed, changed) = pause::resume(&pool, PauseScope::Task, &held.to_string())
        .await
        .unwrap();
    assert!(resumed.changed);
    assert_eq!(resumed.messages, 1);
    assert!(!changed.is_empty(), "the queue is announced");
    assert_eq!(claim(&pool, 10).await, vec![held]);
    let read_ct: i32 = sqlx::query_scalar("SELECT max(read_ct) FROM pgmq.q_steps_demo")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        read_ct, 1,
        "parking is not a read: no lease expiry is reported"
    );
}

#[sqlx::test(migrations = false)]
async fn a_paused_namespace_parks_new_tasks_and_a_claim_parks_stragglers(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    pause::pause(&pool, PauseScope::Namespace, "demo", None, "op")
        .await
        .unwrap();
    let created_while_paused = create(&pool, 0).await;
    assert_eq!(parked(&pool).await, 1, "sent parked");
    // A message sent as the pause committed is visible: the claim parks it.
    sqlx::query("UPDATE pgmq.q_steps_demo SET vt = clock_timestamp()")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(claim(&pool, 10).await, Vec::<Uuid>::new());
    assert_eq!(parked(&pool).await, 1, "the claim parked it again");
    let _ = pause::resume(&pool, PauseScope::Namespace, "demo")
        .await
        .unwrap();
    assert_eq!(claim(&pool, 10).await, vec![created_while_paused]);
}

#[sqlx::test(migrations = false)]
async fn a_template_pause_covers_every_version_and_overlapping_pauses_hold(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let t = create(&pool, 0).await;
    pause::pause(&pool, PauseScope::Template, "demo/diamond", None, "op")
        .await
        .unwrap();
    pause::pause(&pool, PauseScope::Task, &t.to_string(), None, "op")
        .await
        .unwrap();
    assert_eq!(claim(&pool, 10).await, Vec::<Uuid>::new());
    // The task's own pause still holds after the template's is lifted.
    let (r, _) = pause::resume(&pool, PauseScope::Template, "demo/diamond")
        .await
        .unwrap();
    assert_eq!(r.messages, 0);
    assert_eq!(claim(&pool, 10).await, Vec::<Uuid>::new());
    let _ = pause::resume(&pool, PauseScope::Task, &t.to_string())
        .await
        .unwrap();
    assert_eq!(claim(&pool, 10).await, vec![t]);
}

#[sqlx::test(migrations = false)]
async fn pauses_name_something_that_exists(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let err = pause::pause(&pool, PauseScope::Namespace, "nowhere", None, "op").await;
    assert!(
        matches!(err, Err(StoreError::NamespaceNotFound(_))),
        "{err:?}"
    );
    let err = pause::pause(&pool, PauseScope::Template, "demo/nothing", None, "op").await;
    assert!(
        matches!(err, Err(StoreError::TemplateNotFound { .. })),
        "{err:?}"
    );
    let err = pause::pause(&pool, PauseScope::Template, "demo", None, "op").await;
    assert!(
        matches!(err, Err(StoreError::InvalidRequest { .. })),
        "{err:?}"
    );
    let err = pause::pause(&pool, PauseScope::Task, "not-a-uuid", None, "op").await;
    assert!(
        matches!(err, Err(StoreError::InvalidRequest { .. })),
        "{err:?}"
    );
    let err = pause::pause(
        &pool,
        PauseScope::Task,
        &Uuid::now_v7().to_string(),
        None,
        "op",
    )
    .await;
    assert!(matches!(err, Err(StoreError::TaskNotFound(_))), "{err:?}");
    let err = pause::pause(
        &pool,
        PauseScope::Namespace,
        "demo",
        Some(&"x".repeat(1001)),
        "op",
    )
    .await;
    assert!(
        matches!(err, Err(StoreError::InvalidRequest { .. })),
        "{err:?}"
    );
    assert!(
        pause::list(&pool, None).await.unwrap().is_empty(),
        "nothing half-written"
    );
}

#[sqlx::test(migrations = false)]
async fn repair_releases_orphaned_parked_messages_and_forgets_finished_tasks(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let t = create(&pool, 0).await;
    let done = create(&pool, 0).await;
    pause::pause(&pool, PauseScope::Task, &done.to_string(), None, "op")
        .await
        .unwrap();
    for table in [
        "tasker.tasks SET state = 'cancelled' WHERE id",
        "tasker.steps SET state = 'cancelled' WHERE task_id",
    ] {
        sqlx::query(&format!("UPDATE {table} = $1"))
            .bind(done)
            .execute(&pool)
            .await
            .unwrap();
    }
    // A claim that raced a resume parked `t`'s message with no pause left.
    sqlx::query("UPDATE pgmq.q_steps_demo SET vt = 'infinity' WHERE message->>'task_id' = $1")
        .bind(t.to_string())
        .execute(&pool)
        .await
        .unwrap();
    let changed = pause::repair(&pool).await.unwrap();
    assert!(!changed.is_empty());
    assert!(
        pause::list(&pool, None).await.unwrap().is_empty(),
        "the finished task's pause is gone"
    );
    assert_eq!(parked(&pool).await, 0);
    assert_eq!(
        claim(&pool, 10).await,
        vec![t],
        "the cancelled task's step cannot run"
    );
}
