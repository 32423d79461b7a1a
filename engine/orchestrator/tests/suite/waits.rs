//! Durable waits (`docs/waits.md`) with the whole stack: a step that waits
//! for a signal completes only on it (its payload is the step's result, seen
//! by its child) and times out into error otherwise; a signal sent before the
//! step waits is taken when it does; a sleep wakes on time, also after every
//! process was stopped during it and started again; cancelling a task
//! cancels its waiting steps.
//!
//! Every test gets a fresh database from `#[sqlx::test]` and migrates it itself.
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::state::TaskState;
use tasker_store::operator::{self, Actor};
use tasker_store::signal::{self, Refused, Sent};
use tasker_store::task::StepRow;
use tasker_store::StoreError;
use tasker_testkit::{eventually, migrated, register_inline, registry, Stack};
use tasker_worker::handler::rust::handler_fn;
use tasker_worker::handler::HandlerRegistry;

const OPERATOR: Actor<'static> = Actor {
    processor_id: "test-operator",
    reason: Some("test"),
};

/// The example handlers, and `test.seen`: returns the parents' results it was given.
fn handlers() -> HandlerRegistry {
    let r = registry();
    r.register(
        "test.seen",
        handler_fn(|ctx, _| async move { Ok(json!({ "seen": ctx.parent_results })) }),
    );
    r
}

/// `demo/<name>`: `start` (math.compute, or a sleep of `start_ms`) → `approval`
/// (waits for signal `approved`, at most `timeout`) → `finish` (test.seen).
async fn approval_template(pool: &PgPool, name: &str, timeout: &str, start_ms: Option<u64>) {
    let start = match start_ms {
        Some(ms) => format!("{{ name: demo.sleep, config: {{ ms: {ms} }} }}"),
        None => "{ name: math.compute, config: { op: square } }".into(),
    };
    register_inline(
        pool,
        &format!(
            "namespace: demo\nname: {name}\nversion: 1.0.0\nsteps:\n\
             \x20 - {{ name: start, handler: {start} }}\n\
             \x20 - {{ name: approval, wait_for: {{ signal: approved, timeout: {timeout} }}, depends_on: [start] }}\n\
             \x20 - {{ name: finish, handler: {{ name: test.seen }}, depends_on: [approval] }}\n"
        ),
    )
    .await;
}

/// Sends a signal through the store, announcing what changed as the API does.
async fn send(h: &Stack, task: Uuid, name: &str, payload: Value) -> Result<Sent, Refused> {
    let (sent, changed) = signal::send(h.pool(), task, name, &payload, "test")
        .await
        .unwrap_or_else(|e| panic!("sending signal {name}: {e}"));
    h.wakeups().announce(&changed);
    sent
}

async fn step(pool: &PgPool, task: Uuid, name: &str) -> StepRow {
    tasker_testkit::steps(pool, task).await[name].clone()
}

/// Waits until step `name` of `task` is in `state`.
async fn until_state(pool: &PgPool, task: Uuid, name: &str, state: &str) {
    assert!(
        eventually(Duration::from_secs(10), || async {
            step(pool, task, name).await.state == state
        })
        .await,
        "step {name} never reached {state}: {:?}",
        step(pool, task, name).await
    );
}

/// Seconds between a step's start (its wait's) and its end.
fn waited(s: &StepRow) -> f64 {
    let (Some(start), Some(end)) = (s.started_at, s.completed_at) else {
        panic!("step {} has not started and ended: {s:?}", s.name);
    };
    (end - start).num_milliseconds() as f64 / 1000.0
}

#[sqlx::test(migrations = false)]
async fn a_signal_step_completes_only_on_its_signal(pool: PgPool) {
    migrated(&pool).await;
    approval_template(&pool, "approval", "1h", None).await;
    let h = Stack::start(&pool, handlers()).await;
    let id = h.create("approval", json!({ "value": 3 })).await;
    until_state(&pool, id, "approval", "waiting").await;

    // Waiting: no message, no worker, the child not run, the task in process.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let steps = h.steps(id).await;
    assert_eq!(steps["approval"].state, "waiting");
    assert_eq!(steps["approval"].handler_name, "tasker.signal");
    assert_eq!(steps["approval"].wait_signal.as_deref(), Some("approved"));
    let until = steps["approval"].wait_until.expect("a waiting step's end");
    assert_eq!(
        (until - steps["approval"].started_at.unwrap()).num_seconds(),
        3_600
    );
    assert_eq!(steps["finish"].state, "pending");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM pgmq.q_steps_demo")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 0, "a waiting step has no queue message");
    assert_eq!(
        tasker_testkit::task_state(&pool, id).await,
        "steps_in_process"
    );

    // A signal no step waits for is refused; the right one completes the step.
    let other = send(&h, id, "rejected", json!(null)).await;
    assert!(
        matches!(other, Err(Refused::NotAwaited { .. })),
        "{other:?}"
    );
    let payload = json!({ "by": "ann", "amount": 12 });
    let sent = send(&h, id, "approved", payload.clone()).await.unwrap();
    assert!(sent.consumed, "{sent:?}");
    assert_eq!(sent.step, "approval");
    assert_eq!(h.wait(id).await, TaskState::Complete);
    let steps = h.steps(id).await;
    assert_eq!(steps["approval"].result, Some(payload.clone()));
    assert_eq!(steps["approval"].attempts, 1);
    assert_eq!(
        steps["finish"].result,
        Some(json!({ "seen": { "approval": payload } })),
        "the child sees the signal's payload as its parent's result"
    );
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT to_state, event FROM tasker.step_transitions WHERE step_id = $1 ORDER BY id",
    )
    .bind(steps["approval"].id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let events: Vec<(&str, &str)> = events
        .iter()
        .map(|(s, e)| (s.as_str(), e.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("pending", "create"),
            ("waiting", "dependencies_met"),
            ("enqueued_for_orchestration", "signal_received"),
            ("complete", "succeeded"),
        ]
    );
    // The task is finished: a second signal is refused (409 from the API).
    let again = signal::send(&pool, id, "approved", &json!(1), "test").await;
    assert!(matches!(again, Err(StoreError::Transition(_))), "{again:?}");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_signal_step_times_out_into_error_and_a_retry_waits_again(pool: PgPool) {
    migrated(&pool).await;
    approval_template(&pool, "approval", "2s", None).await;
    let h = Stack::start(&pool, handlers()).await;
    let id = h.create("approval", json!({ "value": 3 })).await;
    assert_eq!(h.wait(id).await, TaskState::BlockedByFailures);
    let steps = h.steps(id).await;
    let approval = &steps["approval"];
    assert_eq!(approval.state, "error");
    let error = approval.last_error.clone().unwrap();
    assert_eq!(error["kind"], "signal_timeout");
    assert_eq!(error["retryable"], false);
    assert_eq!(error["message"], "signal 'approved' not received within 2s");
    let secs = waited(approval);
    eprintln!("a 2s signal wait timed out after {secs:.3} s");
    assert!(
        (2.0..3.0).contains(&secs),
        "timed out {secs} s after it began to wait"
    );
    assert_eq!(steps["finish"].state, "pending", "the child never ran");
    let in_dlq: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tasker.step_dlq WHERE step_id = $1)")
            .bind(approval.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(in_dlq, "a timed-out wait is in the dead-letter queue");

    // A late signal is kept; retrying the step makes it wait again, and it
    // takes the signal at once.
    let late = send(&h, id, "approved", json!("late")).await.unwrap();
    assert!(!late.consumed, "{late:?}");
    let twice = send(&h, id, "approved", json!("later")).await;
    assert!(
        matches!(twice, Err(Refused::AlreadyBuffered { .. })),
        "{twice:?}"
    );
    let (_, changed) = operator::retry_step(&pool, id, approval.id, OPERATOR)
        .await
        .unwrap();
    h.wakeups().announce(&changed);
    assert_eq!(h.wait(id).await, TaskState::Complete);
    let steps = h.steps(id).await;
    assert_eq!(steps["approval"].result, Some(json!("late")));
    assert_eq!(
        steps["finish"].result,
        Some(json!({ "seen": { "approval": "late" } }))
    );
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_signal_sent_before_its_step_waits_is_taken_when_it_does(pool: PgPool) {
    migrated(&pool).await;
    approval_template(&pool, "approval", "1h", Some(1_500)).await;
    let h = Stack::start(&pool, handlers()).await;
    let id = h.create("approval", json!({})).await;
    let early = send(&h, id, "approved", json!({ "early": true }))
        .await
        .unwrap();
    assert!(!early.consumed, "{early:?}");
    assert_eq!(early.step_state.as_str(), "pending");
    assert_eq!(h.wait(id).await, TaskState::Complete);
    let steps = h.steps(id).await;
    assert_eq!(steps["approval"].result, Some(json!({ "early": true })));
    assert!(
        steps["approval"].started_at >= steps["start"].completed_at,
        "taken only once its parent was done"
    );
    let consumed_by: Option<Uuid> =
        sqlx::query_scalar("SELECT consumed_by FROM tasker.signals WHERE task_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(consumed_by, Some(steps["approval"].id));
    h.stop().await;
}

/// `demo/<name>`: `nap` sleeps `sleep`, then `after` (math.compute) runs.
async fn sleep_template(pool: &PgPool, name: &str, sleep: &str) {
    register_inline(
        pool,
        &format!(
            "namespace: demo\nname: {name}\nversion: 1.0.0\nsteps:\n\
             \x20 - {{ name: nap, sleep: {sleep} }}\n\
             \x20 - {{ name: after, handler: {{ name: test.seen }}, depends_on: [nap] }}\n"
        ),
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn a_sleep_step_wakes_on_time(pool: PgPool) {
    migrated(&pool).await;
    sleep_template(&pool, "nap", "2s").await;
    let h = Stack::start(&pool, handlers()).await;
    let t0 = Instant::now();
    let id = h.create("nap", json!({})).await;
    assert_eq!(h.wait(id).await, TaskState::Complete);
    let elapsed = t0.elapsed();
    let steps = h.steps(id).await;
    let nap = &steps["nap"];
    let secs = waited(nap);
    eprintln!("a 2s sleep woke after {secs:.3} s");
    assert!((2.0..2.5).contains(&secs), "slept {secs} s");
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(nap.result.clone().unwrap()["slept_until"].clone()).unwrap();
    assert_eq!(
        (until - nap.started_at.unwrap()).num_milliseconds(),
        2_000,
        "{nap:?}"
    );
    assert!(steps["after"].started_at >= nap.completed_at);
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn cancelling_a_task_cancels_its_waiting_steps(pool: PgPool) {
    migrated(&pool).await;
    register_inline(
        &pool,
        "namespace: demo\nname: gate\nversion: 1.0.0\nsteps:\n\
         \x20 - { name: gate, wait_for: { signal: open, timeout: 1d } }\n\
         \x20 - { name: nap, sleep: 1h }\n\
         \x20 - { name: after, handler: { name: test.seen }, depends_on: [gate, nap] }\n",
    )
    .await;
    let h = Stack::start(&pool, handlers()).await;
    let id = h.create("gate", json!({})).await;
    until_state(&pool, id, "gate", "waiting").await;
    until_state(&pool, id, "nap", "waiting").await;
    let (state, changed) = operator::cancel_task(&pool, id, OPERATOR).await.unwrap();
    h.wakeups().announce(&changed);
    assert_eq!(state, TaskState::Cancelled);
    let steps = h.steps(id).await;
    for name in ["gate", "nap", "after"] {
        assert_eq!(steps[name].state, "cancelled", "{name}");
    }
    let wakes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.steps WHERE task_id = $1 AND wake_at IS NOT NULL",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(wakes, 0, "a cancelled step is woken by no sweep");
    let late = signal::send(&pool, id, "open", &json!(null), "test").await;
    assert!(
        matches!(late, Err(StoreError::Transition(_))),
        "a finished task takes no signal: {late:?}"
    );
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_sleep_wakes_on_time_after_every_process_restarted_during_it(pool: PgPool) {
    migrated(&pool).await;
    sleep_template(&pool, "nap", "3s").await;
    let first = Stack::start(&pool, handlers()).await;
    let id = first.create("nap", json!({})).await;
    until_state(&pool, id, "nap", "waiting").await;
    // Every process stops: the orchestrator, the worker, and the connection
    // pool they ran on.
    first.stop().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(step(&pool, id, "nap").await.state, "waiting");
    pool.close().await;

    // Everything starts again, on new connections, still within the sleep.
    let options = (*pool.connect_options()).clone();
    let again = PgPoolOptions::new()
        .max_connections(5)
        .connect_with(options)
        .await
        .unwrap();
    let second = Stack::start(&again, handlers()).await;
    assert_eq!(second.wait(id).await, TaskState::Complete);
    let steps = second.steps(id).await;
    let secs = waited(&steps["nap"]);
    eprintln!("a 3s sleep woke after {secs:.3} s across a restart of everything");
    assert!(
        (3.0..3.5).contains(&secs),
        "slept {secs} s across the restart"
    );
    assert_eq!(steps["after"].state, "complete");
    second.stop().await;
    again.close().await;
}
