//! Concurrency limits by key (`docs/flow-control.md`, "Concurrency limits")
//! with the whole stack: a step limit of 1 per key never lets two runs of
//! one key overlap (checked from the audit timestamps) while other keys run
//! in parallel, and waiting spends no attempt; a template's `cancel_newest`
//! cancels the task that finds its group full; `cancel_in_progress` cancels
//! the running one to make room.
//!
//! Every test gets a fresh database from `#[sqlx::test]` and migrates it itself.
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::state::TaskState;
use tasker_model::step::StepError;
use tasker_testkit::{eventually, migrated, register_inline, Stack};
use tasker_worker::handler::rust::handler_fn;

/// Attempts' (start, end), by key.
type Runs = BTreeMap<String, Vec<(DateTime<Utc>, DateTime<Utc>)>>;

/// Runs (attempts) of the steps named `work`, by key: (start, end) from
/// `tasker.step_transitions`: the claim (→ in_progress) and the report
/// (in_progress → …) of each attempt.
async fn runs_by_key(pool: &PgPool) -> Runs {
    let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT t.context->>'customer', a.created_at,
                (SELECT min(x.created_at) FROM tasker.step_transitions x
                  WHERE x.step_id = s.id AND x.attempt = a.attempt
                    AND x.from_state = 'in_progress')
           FROM tasker.steps s JOIN tasker.tasks t ON t.id = s.task_id
           JOIN tasker.step_transitions a ON a.step_id = s.id AND a.to_state = 'in_progress'
          WHERE s.name = 'work'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut by_key: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for (key, start, end) in rows {
        by_key.entry(key).or_default().push((start, end));
    }
    for runs in by_key.values_mut() {
        runs.sort();
    }
    by_key
}

/// Checks no two runs of one key overlap.
fn assert_no_overlap(by_key: &Runs) {
    for (key, runs) in by_key {
        for pair in runs.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "two runs of key {key} overlap: {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

#[sqlx::test(migrations = false)]
async fn limit_one_per_key_never_overlaps_a_key_and_runs_keys_in_parallel(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: keyed\nversion: 1.0.0\nsteps:\n\
         \x20 - name: work\n\
         \x20   handler: { name: demo.sleep, config: { ms: 100 } }\n\
         \x20   concurrency: { key: input.customer, limit: 1 }\n",
    )
    .await;
    let h = Stack::builder(&pool).workers(2).start().await;
    let began = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let key = if i % 2 == 0 { "A" } else { "B" };
        tasks.push(h.create("keyed", json!({ "customer": key })).await);
    }
    for t in &tasks {
        assert_eq!(h.wait(*t).await, TaskState::Complete, "task {t}");
    }
    let by_key = runs_by_key(&pool).await;
    assert_eq!(by_key.len(), 2);
    for (key, runs) in &by_key {
        assert_eq!(runs.len(), 10, "key {key}");
    }
    assert_no_overlap(&by_key);
    let overlaps = by_key["A"]
        .iter()
        .any(|a| by_key["B"].iter().any(|b| a.0 < b.1 && b.0 < a.1));
    assert!(overlaps, "keys A and B ran in parallel at least once");
    let pairs = by_key["A"]
        .iter()
        .flat_map(|a| by_key["B"].iter().map(move |b| (a, b)))
        .filter(|(a, b)| a.0 < b.1 && b.0 < a.1)
        .count();
    eprintln!(
        "20 tasks in {:?}; overlapping A/B run pairs: {pairs}",
        began.elapsed()
    );
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM tasker.steps")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        attempts.iter().all(|&a| a == 1),
        "waiting spends no attempt: {attempts:?}"
    );
    h.stop().await;
}

/// A step made ready by its parent's result, and a retry coming due, are held
/// like a root: `prep` → `work` (limit 1 per key; its first attempt fails).
#[sqlx::test(migrations = false)]
async fn released_children_and_due_retries_wait_for_their_slot(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: chained\nversion: 1.0.0\nsteps:\n\
         \x20 - { name: prep, handler: { name: math.compute, config: { op: square } } }\n\
         \x20 - name: work\n\
         \x20   handler: { name: test.flaky }\n\
         \x20   depends_on: [prep]\n\
         \x20   retry: { max_attempts: 3, backoff: linear, base_ms: 20, max_ms: 20 }\n\
         \x20   concurrency: { key: input.customer, limit: 1 }\n",
    )
    .await;
    let r = tasker_testkit::registry();
    r.register(
        "test.flaky",
        handler_fn(|ctx, _| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if ctx.attempt == 1 {
                return Err(StepError::retryable("first attempt fails"));
            }
            Ok(json!({ "attempt": ctx.attempt }))
        }),
    );
    let h = Stack::builder(&pool).registry(r).workers(2).start().await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(
            h.create("chained", json!({ "customer": "A", "value": 2 }))
                .await,
        );
    }
    for t in &tasks {
        assert_eq!(h.wait(*t).await, TaskState::Complete, "task {t}");
    }
    let by_key = runs_by_key(&pool).await;
    assert_eq!(by_key["A"].len(), 8, "two attempts each");
    assert_no_overlap(&by_key);
    let (held_retries, admitted): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE from_state = 'waiting_for_retry' AND to_state = 'pending'),
                count(*) FILTER (WHERE event = 'admitted')
           FROM tasker.step_transitions",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    eprintln!("retries held: {held_retries}, admissions: {admitted}");
    h.stop().await;
}

/// `demo/<name>`: one step sleeping `ms`, under a template limit of 1 per
/// `input.customer` with `strategy`.
async fn whole_template(pool: &PgPool, name: &str, strategy: &str, ms: u64) {
    register_inline(
        pool,
        &format!(
            "namespace: demo\nname: {name}\nversion: 1.0.0\n\
             concurrency: {{ key: input.customer, limit: 1, strategy: {strategy} }}\nsteps:\n\
             \x20 - {{ name: work, handler: {{ name: demo.sleep, config: {{ ms: {ms} }} }} }}\n"
        ),
    )
    .await;
}

async fn cancel_reason(pool: &PgPool, task: Uuid) -> Option<String> {
    sqlx::query_scalar(
        "SELECT reason FROM tasker.task_transitions WHERE task_id = $1 AND to_state = 'cancelled'",
    )
    .bind(task)
    .fetch_optional(pool)
    .await
    .unwrap()
    .flatten()
}

#[sqlx::test(migrations = false)]
async fn cancel_newest_cancels_the_task_that_finds_its_group_full(pool: PgPool) {
    migrated(&pool).await;
    whole_template(&pool, "newest", "cancel_newest", 500).await;
    let h = Stack::start(&pool, tasker_testkit::registry()).await;
    let first = h.create("newest", json!({ "customer": "A" })).await;
    let second = h.create("newest", json!({ "customer": "A" })).await;
    let other = h.create("newest", json!({ "customer": "B" })).await;
    assert_eq!(h.wait(second).await, TaskState::Cancelled);
    assert_eq!(
        cancel_reason(&pool, second).await.as_deref(),
        Some("concurrency limit of demo/newest:A reached")
    );
    assert_eq!(h.wait(first).await, TaskState::Complete);
    assert_eq!(h.wait(other).await, TaskState::Complete);
    // The slot is free again.
    let third = h.create("newest", json!({ "customer": "A" })).await;
    assert_eq!(h.wait(third).await, TaskState::Complete);
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn cancel_in_progress_cancels_the_running_task_to_make_room(pool: PgPool) {
    migrated(&pool).await;
    whole_template(&pool, "latest", "cancel_in_progress", 1_500).await;
    let h = Stack::start(&pool, tasker_testkit::registry()).await;
    let first = h.create("latest", json!({ "customer": "A" })).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            h.steps(first).await["work"].state == "in_progress"
        })
        .await,
        "the first task runs"
    );
    let second = h.create("latest", json!({ "customer": "A" })).await;
    assert_eq!(h.wait(first).await, TaskState::Cancelled);
    let reason = cancel_reason(&pool, first).await.unwrap_or_default();
    assert!(
        reason.contains(&format!("superseded by task {second}")),
        "{reason}"
    );
    assert_eq!(h.wait(second).await, TaskState::Complete);
    h.stop().await;
}
