//! The dead-letter queue of steps: a step that ends in error is listed with
//! its reason until an operator retries (fresh attempts), resolves or
//! discards it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde_json::json;
use sqlx::PgPool;

use tasker_model::state::TaskState;
use tasker_model::step::StepError;
use tasker_store::dlq;
use tasker_store::operator::{self, Actor};
use tasker_testkit::{migrated, register_inline, Stack};
use tasker_worker::handler::rust::handler_fn;
use tasker_worker::handler::HandlerRegistry;

const POISON: &str = "namespace: demo\nname: poison\nversion: 1.0.0\nsteps:\n  - name: first\n    handler: { name: test.poison }\n    retry: { max_attempts: 3, backoff: none }\n  - name: second\n    handler: { name: test.ok }\n    depends_on: [first]\n";

const ACTOR: Actor<'static> = Actor {
    processor_id: "test",
    reason: Some("operator"),
};

/// `test.poison` fails permanently while `poison_runs` is below `fail_first`;
/// `test.ok` answers `{"ok": true}`.
fn registry(fail_first: u32) -> (HandlerRegistry, Arc<AtomicU32>) {
    let runs = Arc::new(AtomicU32::new(0));
    let r = HandlerRegistry::new();
    let counter = runs.clone();
    r.register(
        "test.poison",
        handler_fn(move |_, _| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < fail_first {
                    Err(StepError::permanent(format!("poisoned input (run {n})")))
                } else {
                    Ok(json!({ "cured": true }))
                }
            }
        }),
    );
    r.register(
        "test.ok",
        handler_fn(|_, _| async { Ok(json!({ "ok": true })) }),
    );
    (r, runs)
}

#[sqlx::test(migrations = false)]
async fn a_poison_step_is_listed_then_retried_with_fresh_attempts(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, POISON).await;
    let (registry, runs) = registry(1);
    let h = Stack::start(&pool, registry).await;
    let id = h.create("poison", json!({ "order": 7 })).await;
    assert_eq!(h.wait(id).await, TaskState::BlockedByFailures);
    let listed = dlq::list(&pool, None, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    let dead = &listed[0];
    assert_eq!((dead.task_id, dead.step.as_str()), (id, "first"));
    assert_eq!(
        (dead.handler.as_str(), dead.pool.as_str(), dead.attempts),
        ("test.poison", "demo", 1)
    );
    assert_eq!(dead.template, "poison");
    assert_eq!(dead.input, json!({ "order": 7 }));
    let error = dead.last_error.clone().unwrap();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("poisoned input"),
        "{error}"
    );
    assert_eq!(dlq::sizes(&pool).await.unwrap(), [("demo".to_string(), 1)]);
    assert_eq!(
        dlq::get(&pool, dead.step_id).await.unwrap().unwrap().step,
        "first"
    );

    // Retry: fresh attempts, the handler runs again and the task completes.
    let (_, changed) = operator::retry_step(&pool, id, dead.step_id, ACTOR)
        .await
        .unwrap();
    h.wakeups().announce(&changed);
    assert_eq!(h.wait(id).await, TaskState::Complete);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(dlq::list(&pool, None, None, 10).await.unwrap().is_empty());
    let first = &h.steps(id).await["first"];
    assert_eq!(first.attempts, 1, "a retry starts from fresh attempts");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_discarded_step_fails_its_task_and_leaves_the_queue(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, POISON).await;
    let (registry, _) = registry(u32::MAX);
    let h = Stack::start(&pool, registry).await;
    let id = h.create("poison", json!({})).await;
    assert_eq!(h.wait(id).await, TaskState::BlockedByFailures);
    let dead = dlq::list(&pool, Some(&["demo".to_string()]), None, 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dlq::list(&pool, Some(&["other".to_string()]), None, 10)
        .await
        .unwrap()
        .is_empty());
    let (state, changed) = dlq::discard(&pool, dead[0].step_id, ACTOR).await.unwrap();
    h.wakeups().announce(&changed);
    assert_eq!(state, TaskState::Error);
    assert_eq!(tasker_testkit::task_state(&pool, id).await, "error");
    assert!(dlq::list(&pool, None, None, 10).await.unwrap().is_empty());
    // The child that never ran is cancelled; discarding again is "not found".
    assert_eq!(h.steps(id).await["second"].state, "cancelled");
    assert!(dlq::discard(&pool, dead[0].step_id, ACTOR).await.is_err());
    h.stop().await;
}
