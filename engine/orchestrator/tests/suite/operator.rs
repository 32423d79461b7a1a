//! Operator actions (cancel, retry, resolve, complete manually), stale results
//! and recovery of tasks that lost their step messages.
//!
//! Every test gets a fresh database from `#[sqlx::test]` and migrates it itself.
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use tasker_config::StaleTaskAction;
use tasker_model::state::{TaskState, TransitionError};
use tasker_model::step::{Outcome, StepError, StepResultMessage};
use tasker_store::operator::{self, Actor};
use tasker_store::queue::{self, RESULTS_QUEUE};
use tasker_store::result::{self, Processed};
use tasker_store::task::{self, StepRow};
use tasker_store::template::TemplateCache;
use tasker_store::{recovery, step as store_step, StoreError, StoreTransitionError};
use tasker_testkit::{
    eventually, migrated, new_task, register_inline, steps as steps_of, task_state, Stack,
};
use tasker_worker::handler::rust::handler_fn;
use tasker_worker::handler::HandlerRegistry;

const OPERATOR: Actor<'static> = Actor {
    processor_id: "test-operator",
    reason: Some("test"),
};

// ---------------------------------------------------------------- fixtures

/// One orchestrator and one worker running `registry`, heartbeating every
/// 300 ms (so a cancelled step hears of it quickly).
async fn start(pool: &PgPool, registry: HandlerRegistry) -> Stack {
    Stack::builder(pool)
        .registry(registry)
        .worker(|w| w.heartbeat_interval = Duration::from_millis(300))
        .start()
        .await
}

/// Creates a task through the store only (no orchestrator, no worker, so
/// nobody to announce it to).
async fn create_direct(pool: &PgPool, name: &str) -> Uuid {
    let (created, _changed) = task::create(
        pool,
        &TemplateCache::default(),
        &new_task("demo", name, json!({})),
        "test",
    )
    .await
    .unwrap();
    created.task_id
}

async fn task_path(pool: &PgPool, task_id: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT to_state FROM tasker.task_transitions WHERE task_id = $1 ORDER BY id",
    )
    .bind(task_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn count(pool: &PgPool, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn task_transition_count(pool: &PgPool, task_id: Uuid) -> i64 {
    count(
        pool,
        "SELECT count(*) FROM tasker.task_transitions WHERE task_id = $1",
        task_id,
    )
    .await
}

async fn step_transition_count(pool: &PgPool, task_id: Uuid) -> i64 {
    count(
        pool,
        "SELECT count(*) FROM tasker.step_transitions WHERE task_id = $1",
        task_id,
    )
    .await
}

/// `(attempt, outcome, stale)` of every recorded result of a step.
async fn results_of(pool: &PgPool, step_id: Uuid) -> Vec<(i32, String, bool)> {
    sqlx::query_as(
        "SELECT attempt, outcome, stale FROM tasker.step_results WHERE step_id = $1 ORDER BY id",
    )
    .bind(step_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn queue_len(pool: &PgPool, queue: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM pgmq.q_{queue}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

fn is_refused(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Transition(StoreTransitionError::Transition(
            TransitionError::Illegal { .. } | TransitionError::StateChanged { .. }
        ))
    )
}

/// Reports the step and its parents' results as they were handed to it.
fn echo() -> Arc<dyn tasker_worker::handler::Handler> {
    handler_fn(|ctx, _| async move {
        Ok(json!({ "step": ctx.step_name, "parents": ctx.parent_results }))
    })
}

// ---------------------------------------------------------------- cancel

#[sqlx::test(migrations = false)]
async fn cancel_while_running_stops_handler_and_records_stale_result(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: cancellable\nversion: 1.0.0\nsteps:
  - name: slow
    handler: { name: test.wait_for_cancel }
  - name: after
    handler: { name: test.echo }
    depends_on: [slow]\n",
    )
    .await;
    let observed = Arc::new(AtomicBool::new(false));
    let reg = HandlerRegistry::new();
    reg.register("test.echo", echo());
    let obs = observed.clone();
    reg.register(
        "test.wait_for_cancel",
        handler_fn(move |_, cancel| {
            let obs = obs.clone();
            async move {
                tokio::select! {
                    _ = cancel.cancelled() => {
                        obs.store(true, Ordering::SeqCst);
                        Err(StepError::retryable("stopped"))
                    }
                    _ = tokio::time::sleep(Duration::from_secs(10)) => Ok(json!({ "slept": true })),
                }
            }
        }),
    );
    let h = start(&pool, reg).await;
    let id = h.create("cancellable", json!({})).await;

    let running = eventually(Duration::from_secs(10), || async {
        h.steps(id).await["slow"].state == "in_progress"
    })
    .await;
    assert!(running, "slow never started");

    let (cancelled, changed) = operator::cancel_task(&pool, id, OPERATOR).await.unwrap();
    h.wakeups().announce(&changed);
    assert_eq!(cancelled, TaskState::Cancelled);
    assert_eq!(changed.tasks, vec![(id, TaskState::Cancelled)]);
    let cancelled_at = Instant::now();
    assert_eq!(task_state(&pool, id).await, "cancelled");
    let steps = h.steps(id).await;
    assert_eq!(steps["slow"].state, "cancelled");
    assert_eq!(steps["after"].state, "cancelled");
    let task_transitions = task_transition_count(&pool, id).await;
    let step_transitions = step_transition_count(&pool, id).await;

    // The heartbeat (300 ms) tells the handler to stop.
    let stopped = eventually(Duration::from_secs(2), || async {
        observed.load(Ordering::SeqCst)
    })
    .await;
    assert!(
        stopped,
        "handler not cancelled after {:?}",
        cancelled_at.elapsed()
    );

    // Its late result is recorded as stale and changes nothing.
    let slow = steps["slow"].id;
    let recorded = eventually(Duration::from_secs(5), || async {
        !results_of(&pool, slow).await.is_empty()
    })
    .await;
    assert!(recorded, "late result never recorded");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        results_of(&pool, slow).await,
        vec![(1, "retryable_error".to_string(), true)]
    );
    assert_eq!(task_state(&pool, id).await, "cancelled");
    let steps = h.steps(id).await;
    assert_eq!(steps["slow"].state, "cancelled");
    assert_eq!(steps["slow"].attempts, 1);
    assert_eq!(steps["after"].state, "cancelled");
    assert_eq!(steps["after"].attempts, 0);
    assert_eq!(task_transition_count(&pool, id).await, task_transitions);
    assert_eq!(step_transition_count(&pool, id).await, step_transitions);
    assert_eq!(task_path(&pool, id).await.last().unwrap(), "cancelled");
    assert_eq!(queue_len(&pool, RESULTS_QUEUE).await, 0);

    // Cancelling again is refused, not a panic.
    let err = operator::cancel_task(&pool, id, OPERATOR)
        .await
        .unwrap_err();
    assert!(is_refused(&err), "{err:?}");
    assert_eq!(task_transition_count(&pool, id).await, task_transitions);

    // The stale attempt's report left the step message alone; once its lease
    // (5 s) runs out a worker reads it, finds the step cancelled and discards it.
    let q = queue::step_queue("demo").unwrap();
    let drained = eventually(Duration::from_secs(10), || async {
        queue_len(&pool, &q).await == 0
    })
    .await;
    assert!(drained, "the cancelled step's message was never discarded");
    assert_eq!(h.steps(id).await["slow"].attempts, 1, "not run again");
    assert_eq!(step_transition_count(&pool, id).await, step_transitions);
    h.stop().await;
}

// ---------------------------------------------------------------- retry

#[sqlx::test(migrations = false)]
async fn manual_retry_of_failed_step_completes_task(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: fail_once\nversion: 1.0.0\nsteps:
  - name: first
    handler: { name: test.echo }
  - name: second
    handler: { name: test.fail_once }
    depends_on: [first]
    retry: { max_attempts: 3, backoff: none }\n",
    )
    .await;
    let runs = Arc::new(AtomicU32::new(0));
    let reg = HandlerRegistry::new();
    reg.register("test.echo", echo());
    let r = runs.clone();
    reg.register(
        "test.fail_once",
        handler_fn(move |ctx, _| {
            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 1 {
                    Err(StepError::permanent("first run fails"))
                } else {
                    Ok(json!({ "run": n, "attempt": ctx.attempt }))
                }
            }
        }),
    );
    let h = start(&pool, reg).await;
    let id = h.create("fail_once", json!({})).await;
    assert_eq!(h.wait(id).await, TaskState::BlockedByFailures);
    let steps = h.steps(id).await;
    assert_eq!(steps["second"].state, "error");
    assert_eq!(steps["second"].attempts, 1);

    // Only a failed step may be retried.
    let err = operator::retry_step(&pool, id, steps["first"].id, OPERATOR)
        .await
        .unwrap_err();
    assert!(is_refused(&err), "{err:?}");
    assert_eq!(task_state(&pool, id).await, "blocked_by_failures");

    let (next, changed) = operator::retry_step(&pool, id, steps["second"].id, OPERATOR)
        .await
        .unwrap();
    h.wakeups().announce(&changed);
    assert_eq!(next, TaskState::StepsInProcess);
    assert_eq!(
        changed.queues,
        vec![queue::step_queue("demo").unwrap()],
        "the retried step was enqueued"
    );
    assert_eq!(h.wait(id).await, TaskState::Complete);

    let steps = h.steps(id).await;
    let second = &steps["second"];
    assert_eq!(second.state, "complete");
    assert_eq!(second.attempts, 1, "attempts restart at 0 after a retry");
    assert_eq!(second.result, Some(json!({ "run": 2, "attempt": 1 })));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(
        results_of(&pool, second.id).await,
        vec![
            (1, "permanent_error".to_string(), false),
            (1, "success".to_string(), false)
        ]
    );

    let path = task_path(&pool, id).await;
    let blocked = path
        .iter()
        .position(|s| s == "blocked_by_failures")
        .unwrap();
    assert_eq!(
        &path[blocked..],
        [
            "blocked_by_failures",
            "enqueuing_steps",
            "steps_in_process",
            "evaluating_results",
            "complete"
        ]
    );
    let retry_audit = count(
        &pool,
        "SELECT count(*) FROM tasker.step_transitions
          WHERE step_id = $1 AND event = 'operator_retry' AND from_state = 'error'
            AND to_state = 'enqueued' AND attempt = 0",
        second.id,
    )
    .await;
    assert_eq!(retry_audit, 1);
    h.stop().await;
}

// ---------------------------------------------------------------- resolve / complete a step

const DIAMOND_LEFT_FAILS: &str = "namespace: demo\nname: diamond_fail\nversion: 1.0.0\nsteps:
  - name: start
    handler: { name: test.echo }
  - name: left
    handler: { name: test.broken }
    depends_on: [start]
    retry: { max_attempts: 1 }
  - name: right
    handler: { name: test.echo }
    depends_on: [start]
  - name: join
    handler: { name: test.echo }
    depends_on: [left, right]\n";

/// A diamond whose `left` failed for good: the task is blocked, `join` pending.
async fn blocked_diamond(pool: &PgPool) -> (Stack, Uuid, BTreeMap<String, StepRow>) {
    migrated(pool).await;
    register_inline(pool, DIAMOND_LEFT_FAILS).await;
    let reg = HandlerRegistry::new();
    reg.register("test.echo", echo());
    reg.register(
        "test.broken",
        handler_fn(|_, _| async move { Err(StepError::permanent("left broke")) }),
    );
    let h = start(pool, reg).await;
    let id = h.create("diamond_fail", json!({})).await;
    assert_eq!(h.wait(id).await, TaskState::BlockedByFailures);
    let steps = h.steps(id).await;
    assert_eq!(steps["start"].state, "complete");
    assert_eq!(steps["left"].state, "error");
    assert_eq!(steps["right"].state, "complete");
    assert_eq!(steps["join"].state, "pending");
    (h, id, steps)
}

#[sqlx::test(migrations = false)]
async fn resolving_a_failed_step_lets_children_run(pool: PgPool) {
    let (h, id, steps) = blocked_diamond(&pool).await;
    let (next, changed) = operator::finish_step(&pool, id, steps["left"].id, None, OPERATOR)
        .await
        .unwrap();
    h.wakeups().announce(&changed);
    assert_eq!(next, TaskState::StepsInProcess);
    assert_eq!(h.wait(id).await, TaskState::Complete);

    let steps = h.steps(id).await;
    assert_eq!(steps["left"].state, "resolved_manually");
    assert_eq!(steps["left"].result, None);
    let join = &steps["join"];
    assert_eq!(join.state, "complete");
    assert_eq!(join.attempts, 1);
    let parents = join.result.as_ref().unwrap()["parents"]
        .as_object()
        .unwrap();
    let mut names: Vec<&String> = parents.keys().collect();
    names.sort();
    assert_eq!(names, ["left", "right"]);
    // A resolved parent is handed over with a null result.
    assert_eq!(parents["left"], Value::Null);
    assert_eq!(parents["right"]["step"], "right");
    assert_eq!(task_state(&pool, id).await, "complete");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn completing_a_failed_step_with_a_result_feeds_children(pool: PgPool) {
    let (h, id, steps) = blocked_diamond(&pool).await;
    let (next, changed) = operator::finish_step(
        &pool,
        id,
        steps["left"].id,
        Some(json!({ "value": 42 })),
        OPERATOR,
    )
    .await
    .unwrap();
    h.wakeups().announce(&changed);
    assert_eq!(next, TaskState::StepsInProcess);
    assert_eq!(h.wait(id).await, TaskState::Complete);

    let steps = h.steps(id).await;
    assert_eq!(steps["left"].state, "complete");
    assert_eq!(steps["left"].result, Some(json!({ "value": 42 })));
    let join = steps["join"].result.as_ref().unwrap();
    assert_eq!(join["parents"]["left"], json!({ "value": 42 }));
    assert_eq!(join["parents"]["right"]["step"], "right");

    // A finished task refuses further operator changes to its steps.
    let err = operator::finish_step(&pool, id, steps["left"].id, None, OPERATOR)
        .await
        .unwrap_err();
    assert!(is_refused(&err), "{err:?}");
    h.stop().await;
}

// ---------------------------------------------------------------- resolve a task

#[sqlx::test(migrations = false)]
async fn resolving_a_blocked_task_cancels_unfinished_steps(pool: PgPool) {
    let (h, id, _) = blocked_diamond(&pool).await;
    let (resolved, changed) = operator::resolve_task(&pool, id, OPERATOR).await.unwrap();
    h.wakeups().announce(&changed);
    assert_eq!(resolved, TaskState::ResolvedManually);
    assert_eq!(task_state(&pool, id).await, "resolved_manually");
    let steps = h.steps(id).await;
    assert_eq!(steps["start"].state, "complete");
    assert_eq!(steps["right"].state, "complete");
    assert_eq!(
        steps["left"].state, "error",
        "finished steps keep their state"
    );
    assert_eq!(steps["join"].state, "cancelled");
    assert_eq!(steps["join"].attempts, 0);
    let path = task_path(&pool, id).await;
    assert_eq!(
        &path[path.len() - 2..],
        ["blocked_by_failures", "resolved_manually"]
    );
    let err = operator::resolve_task(&pool, id, OPERATOR)
        .await
        .unwrap_err();
    assert!(is_refused(&err), "{err:?}");
    h.stop().await;
}

// ---------------------------------------------------------------- stale results

#[sqlx::test(migrations = false)]
async fn result_of_a_non_current_attempt_is_stale(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: single\nversion: 1.0.0\nsteps:
  - name: only
    handler: { name: test.echo }\n",
    )
    .await;
    let id = create_direct(&pool, "single").await;
    let q = queue::step_queue("demo").unwrap();

    // A worker claims the step (attempt 1) and reports it.
    let claimed = store_step::claim_batch(&pool, &q, 30, 1, "w1", store_step::Serves::ANY)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let ctx = claimed[0].step.clone().unwrap();
    assert_eq!(ctx.attempt, 1);
    let now = Utc::now();
    let current = StepResultMessage {
        step_id: ctx.step_id,
        task_id: id,
        attempt: 1,
        outcome: Outcome::success(json!({ "ok": true })),
        worker_id: "w1".into(),
        started_at: now,
        finished_at: now,
        traceparent: None,
    };
    let _changed = store_step::report(&pool, &q, claimed[0].msg_id, &current, "w1")
        .await
        .unwrap();
    assert_eq!(
        steps_of(&pool, id).await["only"].state,
        "enqueued_for_orchestration"
    );

    // A result for attempt 7 arrives.
    let stale = StepResultMessage {
        attempt: 7,
        outcome: Outcome::success(json!({ "ok": "late" })),
        worker_id: "w7".into(),
        ..current.clone()
    };
    let mut conn = pool.acquire().await.unwrap();
    let stale_msg = queue::send(
        &mut conn,
        RESULTS_QUEUE,
        &serde_json::to_value(&stale).unwrap(),
    )
    .await
    .unwrap();
    drop(conn);
    let task_before = task_state(&pool, id).await;
    let (tt, st) = (
        task_transition_count(&pool, id).await,
        step_transition_count(&pool, id).await,
    );

    let (processed, _changed) = result::process(&pool, stale_msg, &stale, "orch")
        .await
        .unwrap();
    assert_eq!(processed, Processed::Stale);
    assert_eq!(processed.task_state(), None);
    assert_eq!(
        results_of(&pool, ctx.step_id).await,
        vec![(7, "success".to_string(), true)]
    );
    let only = &steps_of(&pool, id).await["only"];
    assert_eq!(only.state, "enqueued_for_orchestration");
    assert_eq!(only.attempts, 1);
    assert_eq!(only.result, None);
    assert_eq!(task_state(&pool, id).await, task_before);
    assert_eq!(task_transition_count(&pool, id).await, tt);
    assert_eq!(step_transition_count(&pool, id).await, st);
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pgmq.q_orchestration_results WHERE msg_id = $1")
            .bind(stale_msg)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(left, 0, "stale result message not deleted");
    // The current attempt's result is still waiting and still counts.
    assert_eq!(queue_len(&pool, RESULTS_QUEUE).await, 1);

    let batch = tasker_store::take::read_batch(&pool, 30, 10).await.unwrap();
    assert_eq!(batch.len(), 1);
    let msg: StepResultMessage = serde_json::from_value(batch[0].message.clone()).unwrap();
    assert_eq!(msg, current);
    let (processed, _changed) = result::process(&pool, batch[0].msg_id, &msg, "orch")
        .await
        .unwrap();
    assert_eq!(
        processed,
        Processed::Completed {
            enqueued: 0,
            task: TaskState::Complete
        }
    );
    // A duplicate delivery of that same result is stale too.
    let (again, _changed) = result::process(&pool, batch[0].msg_id, &msg, "orch")
        .await
        .unwrap();
    assert_eq!(again, Processed::Stale);
    assert_eq!(task_state(&pool, id).await, "complete");
    assert_eq!(
        results_of(&pool, ctx.step_id).await,
        vec![
            (7, "success".to_string(), true),
            (1, "success".to_string(), false),
            (1, "success".to_string(), true)
        ]
    );
    assert_eq!(queue_len(&pool, RESULTS_QUEUE).await, 0);
}

// ---------------------------------------------------------------- recovery

#[sqlx::test(migrations = false)]
async fn stale_task_is_reevaluated_or_failed(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: pair\nversion: 1.0.0\nsteps:
  - name: root
    handler: { name: test.echo }
  - name: child
    handler: { name: test.echo }
    depends_on: [root]\n",
    )
    .await;
    let q = queue::step_queue("demo").unwrap();
    let first = create_direct(&pool, "pair").await;
    let second = create_direct(&pool, "pair").await;
    assert_eq!(queue_len(&pool, &q).await, 2);
    assert_eq!(task_state(&pool, first).await, "steps_in_process");

    // Nothing is stale while it is fresh.
    assert!(recovery::stale_tasks(&pool, Duration::from_secs(60), 10)
        .await
        .unwrap()
        .is_empty());

    // The step messages are lost and nothing has moved for an hour.
    sqlx::query(&format!("DELETE FROM pgmq.q_{q}"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE tasker.tasks SET updated_at = now() - interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE tasker.steps SET updated_at = now() - interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    let mut stale = recovery::stale_tasks(&pool, Duration::from_secs(60), 10)
        .await
        .unwrap();
    stale.sort();
    let mut both = vec![first, second];
    both.sort();
    assert_eq!(stale, both);

    // Re-evaluation re-sends the root step's message.
    let (next, changed) = recovery::recover(&pool, first, StaleTaskAction::Reevaluate, "orch")
        .await
        .unwrap();
    assert_eq!(next, TaskState::StepsInProcess);
    assert_eq!(changed.queues, vec![q.clone()], "the root was sent again");
    assert_eq!(queue_len(&pool, &q).await, 1);
    let body: Value = sqlx::query_scalar(&format!("SELECT message - 'rank' FROM pgmq.q_{q}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    let steps = steps_of(&pool, first).await;
    assert_eq!(
        body,
        json!({ "step_id": steps["root"].id, "task_id": first }),
        "sent ranked by tasker.send_step_messages"
    );
    assert_eq!(steps["root"].state, "enqueued");
    assert_eq!(steps["child"].state, "pending");
    assert_eq!(
        recovery::stale_tasks(&pool, Duration::from_secs(60), 10)
            .await
            .unwrap(),
        vec![second],
        "a recovered task is fresh again"
    );
    // Re-evaluating again does not send a second message.
    let (_, changed) = recovery::recover(&pool, first, StaleTaskAction::Reevaluate, "orch")
        .await
        .unwrap();
    assert!(changed.queues.is_empty(), "{changed:?}");
    assert_eq!(queue_len(&pool, &q).await, 1);

    // The `error` action fails the task instead.
    let (next, _changed) = recovery::recover(&pool, second, StaleTaskAction::Error, "orch")
        .await
        .unwrap();
    assert_eq!(next, TaskState::Error);
    assert_eq!(task_state(&pool, second).await, "error");
    let path = task_path(&pool, second).await;
    assert_eq!(
        &path[path.len() - 3..],
        ["steps_in_process", "evaluating_results", "error"]
    );
    assert_eq!(queue_len(&pool, &q).await, 1);
    assert!(recovery::stale_tasks(&pool, Duration::from_secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    // A finished task is left alone.
    let (left_alone, _changed) =
        recovery::recover(&pool, second, StaleTaskAction::Reevaluate, "orch")
            .await
            .unwrap();
    assert_eq!(left_alone, TaskState::Error);
}
