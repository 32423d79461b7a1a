//! Lost workers are not failed attempts: a step taken over after its lease
//! expired counts a recovery, not a try, and ends (`worker_lost`) only past
//! `worker.max_recoveries`.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use tasker_model::state::TaskState;
use tasker_store::step::{claim_batch, Serves};
use tasker_testkit::{migrated, register_inline, Stack};

const ONE: &str = "namespace: demo\nname: one\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: math.compute, config: { op: square } }\n    retry: { max_attempts: 3, backoff: none }\n";

/// Claims the step `times` times with a 1 s lease and never reports, as a
/// worker killed while running it would: each claim after the first takes
/// over from the previous "worker".
async fn lose_workers(pool: &PgPool, times: usize) {
    for i in 0..times {
        let claimed = claim_batch(
            pool,
            "steps_demo",
            1,
            1,
            &format!("doomed-{i}"),
            Serves::ANY,
        )
        .await
        .unwrap();
        assert_eq!(claimed.len(), 1, "claim {i}");
        assert_eq!(claimed[0].step.as_ref().unwrap().recoveries, i as u32);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_step_whose_worker_died_five_times_still_completes(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, ONE).await;
    let h = Stack::builder(&pool).workers(0).start().await;
    let id = h.create("one", json!({ "value": 7 })).await;
    // Five workers die holding the step (max_attempts is 3).
    lose_workers(&pool, 5).await;
    let w = Stack::builder(&pool).orchestrators(0).start().await;
    assert_eq!(h.wait(id).await, TaskState::Complete);
    let only = &h.steps(id).await["only"];
    assert_eq!((only.attempts, only.recoveries), (6, 5));
    assert_eq!(only.result, Some(json!({ "value": 49 })));
    let reclaims: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.step_transitions WHERE step_id = $1 AND event = 'lease_expired_reclaim'",
    )
    .bind(only.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reclaims, 5, "the audit says which starts were takeovers");
    w.stop().await;
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_step_that_keeps_losing_its_worker_ends_after_max_recoveries(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, ONE).await;
    let h = Stack::builder(&pool)
        .worker(|w| w.max_recoveries = 2)
        .workers(0)
        .start()
        .await;
    let id = h.create("one", json!({ "value": 7 })).await;
    lose_workers(&pool, 3).await;
    let w = Stack::builder(&pool)
        .orchestrators(0)
        .worker(|w| w.max_recoveries = 2)
        .start()
        .await;
    assert_eq!(h.wait(id).await, TaskState::BlockedByFailures);
    let only = &h.steps(id).await["only"];
    assert_eq!(only.state, "error");
    let err = only.last_error.clone().unwrap();
    assert_eq!(err["kind"], "worker_lost");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("worker lost 3 times"),
        "{err}"
    );
    // It waits in the dead-letter queue.
    let dead = tasker_store::dlq::get(&pool, only.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dead.recoveries, 3);
    w.stop().await;
    h.stop().await;
}
