//! Circuit breakers on a worker: a handler backend that keeps failing the way
//! backends fail (timeouts here) opens its breaker; while it is open the
//! worker claims none of its steps (they wait, no attempt spent); after the
//! reset time one trial goes through and its success closes the breaker.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use tasker_model::breaker::{snapshot, BreakerPolicy, BreakerState};
use tasker_model::state::TaskState;
use tasker_testkit::{eventually, migrated, register_inline, Stack};
use tasker_worker::handler::rust::handler_fn;
use tasker_worker::handler::HandlerRegistry;

const SLOW: &str = "namespace: demo\nname: slow\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: test.sometimes_slow }\n    retry: { max_attempts: 1 }\n    timeout_seconds: 1\n";

#[sqlx::test(migrations = false)]
async fn an_open_breaker_leaves_its_backends_steps_queued_until_a_trial_succeeds(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, SLOW).await;
    // The first two calls hang past the step's timeout; later ones answer.
    let calls = Arc::new(AtomicU32::new(0));
    let registry = HandlerRegistry::new();
    let c = calls.clone();
    registry.register(
        "test.sometimes_slow",
        handler_fn(move |_, _| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Ok(json!({ "call": n }))
            }
        }),
    );
    let h = Stack::builder(&pool)
        .registry(registry)
        .worker(|w| {
            w.concurrency = 1;
            w.breakers = BreakerPolicy {
                enabled: true,
                failure_threshold: 2,
                reset_timeout: Duration::from_secs(3),
            };
        })
        .start()
        .await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(h.create("slow", json!({ "i": i })).await);
    }
    // Two timeouts open the breaker.
    assert!(
        eventually(Duration::from_secs(10), || async {
            snapshot()
                .get("handlers.rust")
                .is_some_and(|b| b.state == BreakerState::Open)
        })
        .await
    );
    // While it is open, the other two wait in the queue, unclaimed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let unclaimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.steps WHERE state = 'enqueued' AND attempts = 0",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(unclaimed, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Half-open: a trial succeeds, the breaker closes, the rest complete.
    let mut states = Vec::new();
    for id in &ids {
        states.push(h.wait(*id).await);
    }
    states.sort_by_key(|s| s.to_string());
    assert_eq!(
        states,
        [
            TaskState::BlockedByFailures,
            TaskState::BlockedByFailures,
            TaskState::Complete,
            TaskState::Complete
        ]
    );
    assert_eq!(snapshot()["handlers.rust"].state, BreakerState::Closed);
    h.stop().await;
}
