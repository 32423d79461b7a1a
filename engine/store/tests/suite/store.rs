//! The store layer against a real PostgreSQL: transitions (compare-and-set +
//! audit), task creation, idempotency, the template registry, and the worker's
//! claim / report / heartbeat SQL.
//!
//! Every test gets a fresh database from `#[sqlx::test]` and migrates it itself.
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use tasker_model::change::Changed;
use tasker_model::state::{StepState, TaskState, TransitionError};
use tasker_model::step::{Outcome, StepResultMessage};
use tasker_store::queue::{self, StepMessage, RESULTS_QUEUE};
use tasker_store::step::{claim_batch, heartbeat, report, Claimed, Running, Serves};
use tasker_store::task;
use tasker_store::template::{self as templates, TemplateCache};
use tasker_store::{transition, Cause, StoreError, StoreTransitionError};
use tasker_testkit::{example, fail_recording_results_of, migrated, new_task, register_example};

const STEP_QUEUE: &str = "steps_demo";
const PROCESSOR: &str = "test-processor";

// ---------------------------------------------------------------- fixtures

/// Registers `demo/diamond` and creates one task with `{"value": 3}`.
async fn create_diamond(pool: &PgPool) -> Uuid {
    register_example(pool, "diamond").await;
    let req = new_task("demo", "diamond", json!({"value": 3}));
    let (created, changed) = task::create(pool, &TemplateCache::default(), &req, PROCESSOR)
        .await
        .unwrap();
    assert!(created.created);
    assert_eq!(
        changed.queues,
        vec![STEP_QUEUE.to_string()],
        "creation names the namespace's step queue, where the root went"
    );
    created.task_id
}

/// The results queue, as an orchestrator would create it at start-up.
async fn ensure_results_queue(pool: &PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    queue::ensure(&mut conn, RESULTS_QUEUE).await.unwrap();
}

fn cause(event: &str) -> Cause<'_> {
    Cause {
        event,
        reason: Some("test"),
        processor_id: PROCESSOR,
    }
}

/// `SELECT count(*) ...` as an i64.
async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn step_id(pool: &PgPool, task_id: Uuid, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM tasker.steps WHERE task_id = $1 AND name = $2")
        .bind(task_id)
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn task_state(conn: &mut PgConnection, id: Uuid) -> String {
    sqlx::query_scalar("SELECT state FROM tasker.tasks WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// `(state, attempts)` of a step.
async fn step_row(pool: &PgPool, id: Uuid) -> (String, i32) {
    sqlx::query_as("SELECT state, attempts FROM tasker.steps WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Forces a task's state behind the store's back (and clears `completed_at`).
async fn force_task_state(conn: &mut PgConnection, id: Uuid, state: TaskState) {
    sqlx::query("UPDATE tasker.tasks SET state = $2, completed_at = NULL WHERE id = $1")
        .bind(id)
        .bind(state.as_str())
        .execute(conn)
        .await
        .unwrap();
}

/// Forces a step's state behind the store's back (and clears `completed_at`).
async fn force_step_state(conn: &mut PgConnection, id: Uuid, state: StepState) {
    sqlx::query("UPDATE tasker.steps SET state = $2, completed_at = NULL WHERE id = $1")
        .bind(id)
        .bind(state.as_str())
        .execute(conn)
        .await
        .unwrap();
}

/// Bodies of the messages on `pgmq.q_<queue>`, oldest first (visible or leased).
async fn queue_bodies(pool: &PgPool, queue: &str) -> Vec<Value> {
    assert!(queue.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    sqlx::query_scalar(&format!(
        "SELECT message FROM pgmq.q_{queue} ORDER BY msg_id"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A successful result for `claimed`'s attempt.
fn success_for(claimed: &Claimed, attempt: u32, value: Value) -> StepResultMessage {
    let ctx = claimed.step.as_ref().expect("a runnable step");
    StepResultMessage {
        step_id: ctx.step_id,
        task_id: ctx.task_id,
        attempt,
        outcome: Outcome::success(value),
        worker_id: "w1".into(),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        traceparent: None,
    }
}

/// `(from_state, to_state, event, processor_id)` of the latest task audit row.
async fn last_task_transition(
    conn: &mut PgConnection,
    id: Uuid,
) -> (Option<String>, String, String, Option<String>) {
    sqlx::query_as(
        "SELECT from_state, to_state, event, processor_id FROM tasker.task_transitions
          WHERE task_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(id)
    .fetch_one(conn)
    .await
    .unwrap()
}

async fn task_audit_count(conn: &mut PgConnection, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tasker.task_transitions WHERE task_id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn step_audit_count(conn: &mut PgConnection, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tasker.step_transitions WHERE step_id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Waits until some backend of this database waits on a lock.
async fn wait_for_lock_waiter(pool: &PgPool) {
    for _ in 0..500 {
        let waiting = count(
            pool,
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await;
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the second transaction never blocked on the row lock");
}

// ------------------------------------------------------------- transitions

#[sqlx::test(migrations = false)]
async fn every_task_pair_is_persisted_or_refused_as_the_table_says(pool: PgPool) {
    migrated(&pool).await;
    let id = create_diamond(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    let mut legal_seen = 0;
    for &from in TaskState::ALL {
        for &to in TaskState::ALL {
            force_task_state(&mut conn, id, from).await;
            let before = task_audit_count(&mut conn, id).await;
            let event = format!("{from}->{to}");
            let result = transition::task(&mut conn, id, from, to, cause(&event)).await;
            let after = task_audit_count(&mut conn, id).await;
            let state = task_state(&mut conn, id).await;
            if TaskState::LEGAL.contains(&(from, to)) {
                legal_seen += 1;
                result.unwrap_or_else(|e| panic!("{event} is legal: {e}"));
                assert_eq!(state, to.as_str(), "{event}");
                assert_eq!(after, before + 1, "{event}: one audit row");
                let row = last_task_transition(&mut conn, id).await;
                assert_eq!(
                    row,
                    (
                        Some(from.to_string()),
                        to.to_string(),
                        event.clone(),
                        Some(PROCESSOR.to_string())
                    )
                );
                let completed: Option<chrono::DateTime<chrono::Utc>> =
                    sqlx::query_scalar("SELECT completed_at FROM tasker.tasks WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *conn)
                        .await
                        .unwrap();
                assert_eq!(
                    completed.is_some(),
                    to.is_terminal(),
                    "{event}: completed_at"
                );
            } else {
                match result {
                    Err(StoreTransitionError::Transition(TransitionError::Illegal {
                        machine,
                        from: f,
                        to: t,
                    })) => assert_eq!((machine, f, t), ("task", from.to_string(), to.to_string())),
                    other => panic!("{event} must be refused as illegal, got {other:?}"),
                }
                assert_eq!(state, from.as_str(), "{event}: state unchanged");
                assert_eq!(after, before, "{event}: no audit row");
            }
        }
    }
    assert_eq!(legal_seen, TaskState::LEGAL.len());
}

#[sqlx::test(migrations = false)]
async fn every_step_pair_is_persisted_or_refused_as_the_table_says(pool: PgPool) {
    migrated(&pool).await;
    let task_id = create_diamond(&pool).await;
    let id = step_id(&pool, task_id, "start").await;
    let mut conn = pool.acquire().await.unwrap();
    let mut legal_seen = 0;
    for &from in StepState::ALL {
        for &to in StepState::ALL {
            force_step_state(&mut conn, id, from).await;
            let before = step_audit_count(&mut conn, id).await;
            let event = format!("{from}->{to}");
            let result = transition::step(&mut conn, id, from, to, cause(&event)).await;
            let after = step_audit_count(&mut conn, id).await;
            let (state, _) = step_row(&pool, id).await;
            if StepState::LEGAL.contains(&(from, to)) {
                legal_seen += 1;
                result.unwrap_or_else(|e| panic!("{event} is legal: {e}"));
                assert_eq!(state, to.as_str(), "{event}");
                assert_eq!(after, before + 1, "{event}: one audit row");
                let row: (Uuid, Option<String>, String, String, i32, Option<String>) =
                    sqlx::query_as(
                        "SELECT task_id, from_state, to_state, event, attempt, processor_id
                       FROM tasker.step_transitions WHERE step_id = $1 ORDER BY id DESC LIMIT 1",
                    )
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(
                    row,
                    (
                        task_id,
                        Some(from.to_string()),
                        to.to_string(),
                        event.clone(),
                        0,
                        Some(PROCESSOR.to_string())
                    )
                );
            } else {
                match result {
                    Err(StoreTransitionError::Transition(TransitionError::Illegal {
                        machine,
                        from: f,
                        to: t,
                    })) => assert_eq!((machine, f, t), ("step", from.to_string(), to.to_string())),
                    other => panic!("{event} must be refused as illegal, got {other:?}"),
                }
                assert_eq!(state, from.as_str(), "{event}: state unchanged");
                assert_eq!(after, before, "{event}: no audit row");
            }
        }
    }
    assert_eq!(legal_seen, StepState::LEGAL.len());
}

#[sqlx::test(migrations = false)]
async fn stale_expected_state_is_refused_naming_both_states(pool: PgPool) {
    migrated(&pool).await;
    let task_id = create_diamond(&pool).await;
    let mut conn = pool.acquire().await.unwrap();

    // The task is in steps_in_process; the caller believes it is evaluating_results.
    let before = task_audit_count(&mut conn, task_id).await;
    let err = transition::task(
        &mut conn,
        task_id,
        TaskState::EvaluatingResults,
        TaskState::Complete,
        cause("finish"),
    )
    .await
    .unwrap_err();
    match err {
        StoreTransitionError::Transition(TransitionError::StateChanged {
            machine,
            id,
            expected,
            found,
        }) => assert_eq!(
            (machine, id, expected.as_str(), found.as_str()),
            ("task", task_id, "evaluating_results", "steps_in_process")
        ),
        other => panic!("expected StateChanged, got {other:?}"),
    }
    assert_eq!(task_state(&mut conn, task_id).await, "steps_in_process");
    assert_eq!(task_audit_count(&mut conn, task_id).await, before);

    // The root step is enqueued; the caller believes it is in_progress.
    let step = step_id(&pool, task_id, "start").await;
    let err = transition::step(
        &mut conn,
        step,
        StepState::InProgress,
        StepState::EnqueuedForOrchestration,
        cause("report"),
    )
    .await
    .unwrap_err();
    match err {
        StoreTransitionError::Transition(TransitionError::StateChanged {
            machine,
            id,
            expected,
            found,
        }) => assert_eq!(
            (machine, id, expected.as_str(), found.as_str()),
            ("step", step, "in_progress", "enqueued")
        ),
        other => panic!("expected StateChanged, got {other:?}"),
    }
    assert_eq!(step_row(&pool, step).await.0, "enqueued");
}

#[sqlx::test(migrations = false)]
async fn transition_of_a_missing_row_is_not_found(pool: PgPool) {
    migrated(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    let id = Uuid::now_v7();
    let err = transition::task(
        &mut conn,
        id,
        TaskState::Pending,
        TaskState::Initializing,
        cause("x"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreTransitionError::NotFound { machine: "task", id: i } if i == id),
        "{err:?}"
    );
    let err = transition::step(
        &mut conn,
        id,
        StepState::Pending,
        StepState::Enqueued,
        cause("x"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreTransitionError::NotFound { machine: "step", id: i } if i == id),
        "{err:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn blocked_concurrent_transition_loses_with_state_changed(pool: PgPool) {
    migrated(&pool).await;
    let id = create_diamond(&pool).await;
    let (from, to) = (TaskState::StepsInProcess, TaskState::EvaluatingResults);
    for round in 0..20 {
        force_task_state(&mut pool.acquire().await.unwrap(), id, from).await;
        let event = format!("race-{round}");

        let mut a = pool.begin().await.unwrap();
        transition::task(&mut a, id, from, to, cause(&event))
            .await
            .unwrap();

        let pool_b = pool.clone();
        let event_b = event.clone();
        let b = tokio::spawn(async move {
            let mut tx = pool_b.begin().await.unwrap();
            let r = transition::task(&mut tx, id, from, to, cause(&event_b)).await;
            tx.commit().await.unwrap();
            r
        });
        wait_for_lock_waiter(&pool).await;
        a.commit().await.unwrap();

        match b.await.unwrap() {
            Err(StoreTransitionError::Transition(TransitionError::StateChanged {
                expected,
                found,
                ..
            })) => {
                assert_eq!(
                    (expected.as_str(), found.as_str()),
                    (from.as_str(), to.as_str())
                )
            }
            other => panic!("round {round}: the blocked transaction must lose, got {other:?}"),
        }
        let audit: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasker.task_transitions WHERE task_id = $1 AND event = $2",
        )
        .bind(id)
        .bind(&event)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(audit, 1, "round {round}");
    }
}

#[sqlx::test(migrations = false)]
async fn simultaneous_identical_step_transitions_have_exactly_one_winner(pool: PgPool) {
    migrated(&pool).await;
    let task_id = create_diamond(&pool).await;
    let id = step_id(&pool, task_id, "start").await;
    let (from, to) = (StepState::InProgress, StepState::EnqueuedForOrchestration);
    for round in 0..20 {
        force_step_state(&mut pool.acquire().await.unwrap(), id, from).await;
        let event = format!("race-{round}");
        let attempt = |pool: PgPool, event: String| async move {
            let mut tx = pool.begin().await.unwrap();
            let r = transition::step(&mut tx, id, from, to, cause(&event)).await;
            tx.commit().await.unwrap();
            r
        };
        let (ra, rb) = tokio::join!(
            attempt(pool.clone(), event.clone()),
            attempt(pool.clone(), event.clone())
        );
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {ra:?} / {rb:?}");
        for r in [ra, rb] {
            if let Err(e) = r {
                assert!(
                    matches!(
                        e,
                        StoreTransitionError::Transition(TransitionError::StateChanged { .. })
                    ),
                    "round {round}: {e:?}"
                );
            }
        }
        let audit: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasker.step_transitions WHERE step_id = $1 AND event = $2",
        )
        .bind(id)
        .bind(&event)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(audit, 1, "round {round}");
        assert_eq!(step_row(&pool, id).await.0, to.as_str());
    }
}

// ----------------------------------------------------------- task creation

#[sqlx::test(migrations = false)]
async fn diamond_task_is_created_with_steps_edges_audit_and_one_root_message(pool: PgPool) {
    migrated(&pool).await;
    let task_id = create_diamond(&pool).await;

    let detail = task::detail(&pool, task_id).await.unwrap();
    assert_eq!(detail.task.state, "steps_in_process");
    assert_eq!(detail.task.context, Some(json!({"value": 3})));
    assert_eq!(
        (
            detail.task.template_name.as_str(),
            detail.task.template_version.as_str()
        ),
        ("diamond", "1.0.0")
    );

    let steps: Vec<(String, String, i32, i32)> = sqlx::query_as(
        "SELECT name, state, pending_parents, attempts FROM tasker.steps WHERE task_id = $1 ORDER BY name",
    )
    .bind(task_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let expect = |n: &str, s: &str, p: i32| (n.to_string(), s.to_string(), p, 0);
    assert_eq!(
        steps,
        vec![
            expect("join", "pending", 2),
            expect("left", "pending", 1),
            expect("right", "pending", 1),
            expect("start", "enqueued", 0),
        ]
    );

    let mut edges = detail.edges.clone();
    edges.sort();
    let e = |p: &str, c: &str| (p.to_string(), c.to_string());
    assert_eq!(
        edges,
        vec![
            e("left", "join"),
            e("right", "join"),
            e("start", "left"),
            e("start", "right")
        ]
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasker.step_edges").await,
        4
    );

    let path: Vec<(Option<String>, String)> = sqlx::query_as(
        "SELECT from_state, to_state FROM tasker.task_transitions WHERE task_id = $1 ORDER BY id",
    )
    .bind(task_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let hop = |f: Option<&str>, t: &str| (f.map(str::to_string), t.to_string());
    assert_eq!(
        path,
        vec![
            hop(None, "pending"),
            hop(Some("pending"), "initializing"),
            hop(Some("initializing"), "enqueuing_steps"),
            hop(Some("enqueuing_steps"), "steps_in_process"),
        ]
    );

    let start = step_id(&pool, task_id, "start").await;
    let root_audit: Vec<(Option<String>, String)> = sqlx::query_as(
        "SELECT from_state, to_state FROM tasker.step_transitions WHERE step_id = $1 ORDER BY id",
    )
    .bind(start)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        root_audit,
        vec![hop(None, "pending"), hop(Some("pending"), "enqueued")]
    );

    let bodies = queue_bodies(&pool, STEP_QUEUE).await;
    assert_eq!(bodies.len(), 1);
    let msg: StepMessage = serde_json::from_value(bodies[0].clone()).unwrap();
    assert_eq!(
        msg,
        StepMessage {
            step_id: start,
            task_id
        }
    );
}

#[sqlx::test(migrations = false)]
async fn same_idempotency_key_returns_the_first_task(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let mut req = new_task("demo", "diamond", json!({"value": 3}));
    req.idempotency_key = Some("order-42".into());

    let (first, _changed) = task::create(&pool, &cache, &req, PROCESSOR).await.unwrap();
    let (second, second_changed) = task::create(&pool, &cache, &req, PROCESSOR).await.unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert!(
        second_changed.is_empty(),
        "a repeated request sends nothing: {second_changed:?}"
    );
    assert_eq!(first.task_id, second.task_id);
    assert_eq!(count(&pool, "SELECT count(*) FROM tasker.tasks").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM tasker.steps").await, 4);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasker.task_transitions").await,
        4
    );
    assert_eq!(queue_bodies(&pool, STEP_QUEUE).await.len(), 1);

    req.idempotency_key = Some("order-43".into());
    let (third, _changed) = task::create(&pool, &cache, &req, PROCESSOR).await.unwrap();
    assert!(third.created);
    assert_ne!(third.task_id, first.task_id);
    assert_eq!(count(&pool, "SELECT count(*) FROM tasker.tasks").await, 2);
    assert_eq!(queue_bodies(&pool, STEP_QUEUE).await.len(), 2);
}

#[sqlx::test(migrations = false)]
async fn concurrent_creations_with_one_key_make_one_task(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let mut req = new_task("demo", "diamond", json!({"value": 3}));
    req.idempotency_key = Some("same".into());
    let (a, b) = tokio::join!(
        task::create(&pool, &cache, &req, PROCESSOR),
        task::create(&pool, &cache, &req, PROCESSOR)
    );
    let ((a, _), (b, _)) = (a.unwrap(), b.unwrap());
    assert_eq!(a.task_id, b.task_id);
    assert_eq!([a.created, b.created].iter().filter(|c| **c).count(), 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM tasker.tasks").await, 1);
    assert_eq!(queue_bodies(&pool, STEP_QUEUE).await.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn rejected_creation_requests_write_nothing(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    register_example(&pool, "linear").await;
    let cache = TemplateCache::default();

    let err = task::create(
        &pool,
        &cache,
        &new_task("demo", "nope", json!({"value": 3})),
        PROCESSOR,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, StoreError::TemplateNotFound { key } if key == "demo/nope/latest"),
        "{err:?}"
    );

    let mut req = new_task("demo", "diamond", json!({"value": 3}));
    req.version = Some("9.9.9".into());
    let err = task::create(&pool, &cache, &req, PROCESSOR)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TemplateNotFound { key } if key == "demo/diamond/9.9.9"),
        "{err:?}"
    );

    let err = task::create(
        &pool,
        &cache,
        &new_task("demo", "linear", json!({"value": "x"})),
        PROCESSOR,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::InputRejected { .. }), "{err:?}");
    assert!(err.to_string().contains("/value"), "{err}");

    let err = task::create(
        &pool,
        &cache,
        &new_task("demo", "linear", json!([1, 2])),
        PROCESSOR,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::InputRejected { .. }), "{err:?}");

    let err = task::create(
        &pool,
        &cache,
        &new_task("nowhere", "diamond", json!({"value": 3})),
        PROCESSOR,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::TemplateNotFound { .. } | StoreError::NamespaceNotFound(_)
        ),
        "{err:?}"
    );

    let mut req = new_task("demo", "diamond", json!({"value": 3}));
    req.idempotency_key = Some("k".repeat(task::MAX_IDEMPOTENCY_KEY + 1));
    let err = task::create(&pool, &cache, &req, PROCESSOR)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidRequest { field, .. } if field == "idempotency_key"),
        "{err:?}"
    );
    assert!(err.to_string().contains("idempotency_key"), "{err}");
    req.idempotency_key = Some(String::new());
    let err = task::create(&pool, &cache, &req, PROCESSOR)
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::InvalidRequest { .. }), "{err:?}");

    for table in [
        "tasks",
        "steps",
        "step_edges",
        "task_transitions",
        "step_transitions",
    ] {
        let n = count(&pool, &format!("SELECT count(*) FROM tasker.{table}")).await;
        assert_eq!(n, 0, "tasker.{table}");
    }
    assert!(queue_bodies(&pool, STEP_QUEUE).await.is_empty());
}

// -------------------------------------------------------- template registry

#[sqlx::test(migrations = false)]
async fn registering_every_example_twice_is_a_no_op(pool: PgPool) {
    migrated(&pool).await;
    for name in [
        "diamond",
        "linear",
        "mixed_dag",
        "order_fulfillment",
        "tree",
    ] {
        let tpl = example(name);
        let first = templates::register(&pool, &tpl).await.unwrap();
        let second = templates::register(&pool, &tpl).await.unwrap();
        assert!(first.created, "{name}");
        assert!(
            !second.created,
            "{name}: identical definition registers once"
        );
        assert_eq!(first.id, second.id, "{name}");
        let found = templates::find(&pool, &tpl.namespace, &tpl.name, Some("1.0.0"))
            .await
            .unwrap();
        assert_eq!(found.id, first.id);
        assert_eq!(found.template, tpl, "{name}: stored definition round-trips");
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasker.templates").await,
        5
    );
    let queues = count(
        &pool,
        "SELECT count(*) FROM pgmq.meta WHERE queue_name IN ('steps_demo', 'steps_ecommerce')",
    )
    .await;
    assert_eq!(queues, 2);
}

#[sqlx::test(migrations = false)]
async fn changed_definition_under_the_same_version_conflicts(pool: PgPool) {
    migrated(&pool).await;
    let tpl = register_example(&pool, "diamond").await;
    let mut changed = tpl.clone();
    changed.steps[0].handler.config = json!({"op": "cube"});
    let err = templates::register(&pool, &changed).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::TemplateConflict { key } if key == "demo/diamond/1.0.0"),
        "{err:?}"
    );
    let stored = templates::find(&pool, "demo", "diamond", Some("1.0.0"))
        .await
        .unwrap();
    assert_eq!(stored.template, tpl, "the first definition is kept");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasker.templates").await,
        1
    );
}

#[sqlx::test(migrations = false)]
async fn latest_version_is_the_highest_semver_not_the_last_registered(pool: PgPool) {
    migrated(&pool).await;
    let base = example("linear");
    let mut ids = std::collections::HashMap::new();
    for v in ["1.0.0", "1.10.0", "1.2.0"] {
        let mut tpl = base.clone();
        tpl.name = "versions".into();
        tpl.version = semver::Version::parse(v).unwrap();
        tpl.description = Some(format!("version {v}"));
        ids.insert(v, templates::register(&pool, &tpl).await.unwrap().id);
    }
    let latest = templates::find(&pool, "demo", "versions", None)
        .await
        .unwrap();
    assert_eq!(latest.template.version.to_string(), "1.10.0");
    assert_eq!(latest.id, ids["1.10.0"]);
    let exact = templates::find(&pool, "demo", "versions", Some("1.2.0"))
        .await
        .unwrap();
    assert_eq!(
        (exact.id, exact.template.description.as_deref()),
        (ids["1.2.0"], Some("version 1.2.0"))
    );

    // The cache answers "latest" from the database, so a newer version shows up.
    let cache = TemplateCache::default();
    assert_eq!(
        cache.get(&pool, "demo", "versions", None).await.unwrap().id,
        ids["1.10.0"]
    );
    let mut newer = base.clone();
    newer.name = "versions".into();
    newer.version = semver::Version::parse("2.0.0").unwrap();
    let newer_id = templates::register(&pool, &newer).await.unwrap().id;
    assert_eq!(
        cache.get(&pool, "demo", "versions", None).await.unwrap().id,
        newer_id
    );
    assert_eq!(
        cache
            .get(&pool, "demo", "versions", Some("1.2.0"))
            .await
            .unwrap()
            .id,
        ids["1.2.0"]
    );

    let err = templates::find(&pool, "demo", "missing", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TemplateNotFound { key } if key == "demo/missing/latest"),
        "{err:?}"
    );
}

// ------------------------------------------------- claim, report, heartbeat

#[sqlx::test(migrations = false)]
async fn claim_then_report_moves_the_step_and_the_messages(pool: PgPool) {
    migrated(&pool).await;
    ensure_results_queue(&pool).await;
    let task_id = create_diamond(&pool).await;
    let start = step_id(&pool, task_id, "start").await;

    let claimed = claim_batch(&pool, STEP_QUEUE, 30, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!(c.read_ct, 1);
    let ctx = c.step.as_ref().expect("the root step is runnable");
    assert_eq!((ctx.step_id, ctx.task_id), (start, task_id));
    assert_eq!(
        (ctx.namespace.as_str(), ctx.template.as_str()),
        ("demo", "diamond")
    );
    assert_eq!(
        (ctx.step_name.as_str(), ctx.handler.as_str()),
        ("start", "math.compute")
    );
    assert_eq!(
        (ctx.attempt, ctx.max_attempts, ctx.timeout_seconds),
        (1, 3, 30)
    );
    assert_eq!(ctx.input, json!({"value": 3}));
    assert_eq!(ctx.config, json!({"op": "square"}));
    assert!(ctx.parent_results.is_empty());
    assert_eq!(step_row(&pool, start).await, ("in_progress".to_string(), 1));
    let claim_audit: (Option<String>, String, i32, Option<String>) = sqlx::query_as(
        "SELECT from_state, event, attempt, processor_id FROM tasker.step_transitions
          WHERE step_id = $1 AND to_state = 'in_progress'",
    )
    .bind(start)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        claim_audit,
        (
            Some("enqueued".into()),
            "claim".into(),
            1,
            Some("w1".into())
        )
    );

    assert!(
        claim_batch(&pool, STEP_QUEUE, 30, 10, "w2", Serves::ANY)
            .await
            .unwrap()
            .is_empty(),
        "a leased message is not handed out again"
    );

    let result = success_for(c, 1, json!({"value": 9}));
    let changed = report(&pool, STEP_QUEUE, c.msg_id, &result, "w1")
        .await
        .unwrap();
    assert_eq!(
        changed,
        Changed::queue(RESULTS_QUEUE),
        "a report sends to the results queue"
    );
    assert_eq!(
        step_row(&pool, start).await,
        ("enqueued_for_orchestration".to_string(), 1)
    );
    assert!(
        queue_bodies(&pool, STEP_QUEUE).await.is_empty(),
        "step message deleted"
    );
    let results = queue_bodies(&pool, RESULTS_QUEUE).await;
    assert_eq!(results.len(), 1);
    let back: StepResultMessage = serde_json::from_value(results[0].clone()).unwrap();
    assert_eq!(back, result);
    let reported = count(
        &pool,
        "SELECT count(*) FROM tasker.step_transitions
          WHERE event = 'reported' AND from_state = 'in_progress'
            AND to_state = 'enqueued_for_orchestration' AND attempt = 1 AND processor_id = 'w1'",
    )
    .await;
    assert_eq!(reported, 1);

    // A late report for an attempt that is not current changes no state.
    let stale = success_for(c, 7, json!({"value": -1}));
    let _changed = report(&pool, STEP_QUEUE, c.msg_id, &stale, "w1")
        .await
        .unwrap();
    assert_eq!(
        step_row(&pool, start).await,
        ("enqueued_for_orchestration".to_string(), 1)
    );
    let reported = count(
        &pool,
        "SELECT count(*) FROM tasker.step_transitions WHERE event = 'reported'",
    )
    .await;
    assert_eq!(reported, 1);
}

#[sqlx::test(migrations = false)]
async fn report_for_an_attempt_that_is_not_current_changes_no_step_state(pool: PgPool) {
    migrated(&pool).await;
    ensure_results_queue(&pool).await;
    let task_id = create_diamond(&pool).await;
    let start = step_id(&pool, task_id, "start").await;
    let claimed = claim_batch(&pool, STEP_QUEUE, 30, 10, "w1", Serves::ANY)
        .await
        .unwrap();

    let stale = success_for(&claimed[0], 7, json!({"value": 9}));
    let _changed = report(&pool, STEP_QUEUE, claimed[0].msg_id, &stale, "w1")
        .await
        .unwrap();
    assert_eq!(step_row(&pool, start).await, ("in_progress".to_string(), 1));
    let reported = count(
        &pool,
        "SELECT count(*) FROM tasker.step_transitions WHERE event = 'reported'",
    )
    .await;
    assert_eq!(reported, 0);
    // The result still goes to the orchestrator, which records it as stale.
    assert_eq!(queue_bodies(&pool, RESULTS_QUEUE).await.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn report_works_on_a_freshly_migrated_database(pool: PgPool) {
    migrated(&pool).await;
    create_diamond(&pool).await;
    let claimed = claim_batch(&pool, STEP_QUEUE, 30, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    let result = success_for(&claimed[0], 1, json!({"value": 9}));
    let _changed = report(&pool, STEP_QUEUE, claimed[0].msg_id, &result, "w1")
        .await
        .expect("report must not depend on a queue nobody creates");
    assert_eq!(queue_bodies(&pool, RESULTS_QUEUE).await.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn expired_lease_is_reclaimed_as_a_new_attempt(pool: PgPool) {
    migrated(&pool).await;
    let task_id = create_diamond(&pool).await;
    let start = step_id(&pool, task_id, "start").await;

    let first = claim_batch(&pool, STEP_QUEUE, 1, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = claim_batch(&pool, STEP_QUEUE, 30, 10, "w2", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].msg_id, first[0].msg_id);
    assert_eq!(second[0].read_ct, 2);
    let ctx = second[0].step.as_ref().unwrap();
    assert_eq!((ctx.step_id, ctx.attempt), (start, 2));
    assert_eq!(step_row(&pool, start).await, ("in_progress".to_string(), 2));
    let reclaim: Vec<(Option<String>, String, i32, Option<String>)> = sqlx::query_as(
        "SELECT from_state, to_state, attempt, processor_id FROM tasker.step_transitions
          WHERE step_id = $1 AND event = 'lease_expired_reclaim'",
    )
    .bind(start)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        reclaim,
        vec![(
            Some("in_progress".into()),
            "in_progress".into(),
            2,
            Some("w2".into())
        )]
    );
}

#[sqlx::test(migrations = false)]
async fn stale_report_after_reclaim_leaves_the_current_attempts_message(pool: PgPool) {
    migrated(&pool).await;
    ensure_results_queue(&pool).await;
    let task_id = create_diamond(&pool).await;
    let start = step_id(&pool, task_id, "start").await;

    let first = claim_batch(&pool, STEP_QUEUE, 1, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = claim_batch(&pool, STEP_QUEUE, 1, 10, "w2", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(second[0].step.as_ref().unwrap().attempt, 2);

    // w1 wakes up and reports its (no longer current) attempt 1.
    let late = success_for(&first[0], 1, json!({"value": 9}));
    let _changed = report(&pool, STEP_QUEUE, first[0].msg_id, &late, "w1")
        .await
        .unwrap();
    assert_eq!(step_row(&pool, start).await, ("in_progress".to_string(), 2));

    // If w2 now dies, its lease must run out and the step be handed out again.
    assert_eq!(
        queue_bodies(&pool, STEP_QUEUE).await.len(),
        1,
        "the step message of the current attempt must survive a stale report"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let third = claim_batch(&pool, STEP_QUEUE, 30, 10, "w3", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(third.len(), 1, "the step is not stuck in in_progress");
}

#[sqlx::test(migrations = false)]
async fn message_of_a_finished_step_is_handed_out_without_a_step(pool: PgPool) {
    migrated(&pool).await;
    let task_id = create_diamond(&pool).await;
    let start = step_id(&pool, task_id, "start").await;
    force_step_state(
        &mut pool.acquire().await.unwrap(),
        start,
        StepState::Complete,
    )
    .await;
    let claimed = claim_batch(&pool, STEP_QUEUE, 30, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].step.is_none(), "{:?}", claimed[0]);
    assert_eq!(step_row(&pool, start).await, ("complete".to_string(), 0));
    let claims = count(
        &pool,
        "SELECT count(*) FROM tasker.step_transitions WHERE to_state = 'in_progress'",
    )
    .await;
    assert_eq!(claims, 0);
}

#[sqlx::test(migrations = false)]
async fn heartbeat_extends_the_lease_and_reports_a_dead_task(pool: PgPool) {
    migrated(&pool).await;
    let task_id = create_diamond(&pool).await;
    let claimed = claim_batch(&pool, STEP_QUEUE, 1, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    let msg_id = claimed[0].msg_id;
    let ctx = claimed[0].step.clone().unwrap();
    let running = Running {
        queue: STEP_QUEUE,
        msg_id,
        task_id,
        step_id: ctx.step_id,
        attempt: ctx.attempt,
    };

    assert!(heartbeat(&pool, running, 30).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        claim_batch(&pool, STEP_QUEUE, 30, 10, "w2", Serves::ANY)
            .await
            .unwrap()
            .is_empty(),
        "the heartbeat extended the lease past the first second"
    );

    force_task_state(
        &mut pool.acquire().await.unwrap(),
        task_id,
        TaskState::Cancelled,
    )
    .await;
    assert!(!heartbeat(&pool, running, 30).await.unwrap());
    let unknown = Running {
        task_id: Uuid::now_v7(),
        ..running
    };
    assert!(!heartbeat(&pool, unknown, 30).await.unwrap());
}

#[sqlx::test(migrations = false)]
async fn a_taken_over_attempts_heartbeat_extends_nothing_and_says_stop(pool: PgPool) {
    migrated(&pool).await;
    let task_id = create_diamond(&pool).await;
    let first = claim_batch(&pool, STEP_QUEUE, 1, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    let ctx = first[0].step.clone().unwrap();
    let stale = Running {
        queue: STEP_QUEUE,
        msg_id: first[0].msg_id,
        task_id,
        step_id: ctx.step_id,
        attempt: ctx.attempt,
    };
    // w1 stalls past its lease; w2 takes the step over as attempt 2.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = claim_batch(&pool, STEP_QUEUE, 1, 10, "w2", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(second[0].step.as_ref().unwrap().attempt, 2);
    // w1 wakes: its heartbeat must not keep attempt 2's lease alive.
    assert!(!heartbeat(&pool, stale, 30).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let third = claim_batch(&pool, STEP_QUEUE, 1, 10, "w3", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(
        third[0].step.as_ref().unwrap().attempt,
        3,
        "w2's lease (1 s) ran out: w1's heartbeat did not extend it"
    );
}

#[sqlx::test(migrations = false)]
async fn a_result_that_fails_in_a_batch_is_rolled_back_alone(pool: PgPool) {
    use tasker_store::result::{process_batch, Processed};
    use tasker_store::take::read_batch;
    migrated(&pool).await;
    ensure_results_queue(&pool).await;
    let first = create_diamond(&pool).await;
    let req = new_task("demo", "diamond", json!({"value": 4}));
    let (second, _changed) = task::create(&pool, &TemplateCache::default(), &req, PROCESSOR)
        .await
        .unwrap();
    let second = second.task_id;
    let claimed = claim_batch(&pool, STEP_QUEUE, 30, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    for c in &claimed {
        let _changed = report(
            &pool,
            STEP_QUEUE,
            c.msg_id,
            &success_for(c, 1, json!(1)),
            "w1",
        )
        .await
        .unwrap();
    }
    let doomed = step_id(&pool, second, "start").await;
    // Fault injection: recording the second task's result raises.
    fail_recording_results_of(&pool, doomed).await;

    let mut batch: Vec<(i64, StepResultMessage)> = read_batch(&pool, 30, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.msg_id, serde_json::from_value(m.message).unwrap()))
        .collect();
    assert_eq!(batch.len(), 2);
    let unknown = StepResultMessage {
        step_id: Uuid::now_v7(),
        ..batch[0].1.clone()
    };
    batch.push((i64::MAX, unknown));
    let (outcomes, _changed) = process_batch(&pool, &batch, PROCESSOR).await.unwrap();
    assert_eq!(outcomes.len(), 3);
    let unknown_step = batch[2].1.step_id;
    for ((_, msg), outcome) in batch.iter().zip(&outcomes) {
        if msg.step_id == unknown_step {
            assert!(matches!(outcome, Err(StoreError::StepNotFound(_))));
        } else if msg.task_id == first {
            assert_eq!(
                outcome.as_ref().unwrap(),
                &Processed::Completed {
                    enqueued: 2,
                    task: TaskState::StepsInProcess
                }
            );
        } else {
            assert_eq!(msg.task_id, second);
            let err = outcome.as_ref().unwrap_err().to_string();
            assert!(err.contains("injected failure"), "{err}");
            assert!(err.contains(&doomed.to_string()), "{err}");
        }
    }
    let first_start = step_id(&pool, first, "start").await;
    assert_eq!(step_row(&pool, first_start).await.0, "complete");
    assert_eq!(
        step_row(&pool, doomed).await.0,
        "enqueued_for_orchestration",
        "the failed result changed nothing"
    );
    let kept = queue_bodies(&pool, RESULTS_QUEUE).await;
    assert_eq!(kept.len(), 1, "only the failed result's message is left");
    assert_eq!(kept[0]["step_id"], json!(doomed));
    let recorded = count(&pool, "SELECT count(*) FROM tasker.step_results").await;
    assert_eq!(recorded, 1);
}

// ------------------------------------------------- results taken in one statement

/// Creates `n` diamonds, claims their roots and reports each with the outcome
/// `outcome(i)`; returns the task ids in creation order.
async fn diamonds_with_reported_roots(
    pool: &PgPool,
    n: usize,
    outcome: impl Fn(usize, &Claimed) -> StepResultMessage,
) -> Vec<Uuid> {
    ensure_results_queue(pool).await;
    register_example(pool, "diamond").await;
    let mut tasks = Vec::new();
    for _ in 0..n {
        let req = new_task("demo", "diamond", json!({"value": 2}));
        let (created, _changed) = task::create(pool, &TemplateCache::default(), &req, PROCESSOR)
            .await
            .unwrap();
        tasks.push(created.task_id);
    }
    let claimed = claim_batch(pool, STEP_QUEUE, 30, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(claimed.len(), n);
    for c in &claimed {
        let task = c.step.as_ref().unwrap().task_id;
        let i = tasks.iter().position(|t| *t == task).unwrap();
        let _changed = report(pool, STEP_QUEUE, c.msg_id, &outcome(i, c), "w1")
            .await
            .unwrap();
    }
    tasks
}

/// The outcome of each taken result, by task.
fn outcomes_by_task(
    taken: Vec<tasker_store::take::Taken>,
) -> std::collections::HashMap<Uuid, Vec<Result<tasker_store::result::Processed, String>>> {
    use tasker_store::take::Taken;
    let mut by_task: std::collections::HashMap<Uuid, Vec<_>> = Default::default();
    for t in taken {
        match t {
            Taken::Result { msg, outcome, .. } => by_task
                .entry(msg.task_id)
                .or_default()
                .push(outcome.map_err(|e| e.to_string())),
            Taken::Unreadable { msg_id, error } => panic!("message {msg_id} unreadable: {error}"),
        }
    }
    by_task
}

#[sqlx::test(migrations = false)]
async fn taking_results_applies_successes_and_decides_failures_by_policy(pool: PgPool) {
    use tasker_store::result::Processed;
    use tasker_store::take::take_batch;
    migrated(&pool).await;
    let tasks = diamonds_with_reported_roots(&pool, 2, |i, c| {
        let mut msg = success_for(c, 1, json!(4));
        if i == 1 {
            msg.outcome = Outcome::retryable("try again");
        }
        msg
    })
    .await;
    let (taken, changed) = take_batch(&pool, 30, 10, PROCESSOR).await.unwrap();
    assert_eq!(taken.len(), 2);
    assert_eq!(
        changed.queues,
        vec![STEP_QUEUE.to_string()],
        "the success enqueued its children"
    );
    let by_task = outcomes_by_task(taken);
    assert_eq!(
        by_task[&tasks[0]],
        vec![Ok(Processed::Completed {
            enqueued: 2,
            task: TaskState::StepsInProcess
        })]
    );
    assert!(
        matches!(
            by_task[&tasks[1]][..],
            [Ok(Processed::RetryScheduled { .. })]
        ),
        "{:?}",
        by_task[&tasks[1]]
    );
    // Everything it read is processed: the queue is empty, the children of the
    // success are enqueued with their audit rows, the failure waits.
    assert!(queue_bodies(&pool, RESULTS_QUEUE).await.is_empty());
    let start = step_id(&pool, tasks[0], "start").await;
    assert_eq!(step_row(&pool, start).await.0, "complete");
    let left = step_id(&pool, tasks[0], "left").await;
    assert_eq!(step_row(&pool, left).await.0, "enqueued");
    let failed = step_id(&pool, tasks[1], "start").await;
    assert_eq!(step_row(&pool, failed).await.0, "waiting_for_retry");
    let messages = queue_bodies(&pool, STEP_QUEUE).await;
    assert_eq!(messages.len(), 2, "left and right of the first task");
    assert!(messages.iter().all(|m| m["task_id"] == json!(tasks[0])));
    let audits = count(
        &pool,
        &format!(
            "SELECT count(*) FROM tasker.step_transitions
              WHERE task_id = '{}' AND step_id <> '{start}' AND to_state = 'enqueued'",
            tasks[0]
        ),
    )
    .await;
    assert_eq!(audits, 2);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasker.step_results").await,
        2
    );
    // Nothing left: an empty batch.
    let (taken, changed) = take_batch(&pool, 30, 10, PROCESSOR).await.unwrap();
    assert!(taken.is_empty());
    assert!(changed.is_empty(), "{changed:?}");
}

#[sqlx::test(migrations = false)]
async fn a_batch_that_raises_is_applied_one_by_one_and_only_the_failing_result_stays(pool: PgPool) {
    use tasker_store::result::Processed;
    use tasker_store::take::take_batch;
    migrated(&pool).await;
    let tasks = diamonds_with_reported_roots(&pool, 3, |_, c| success_for(c, 1, json!(4))).await;
    let doomed = step_id(&pool, tasks[1], "start").await;
    fail_recording_results_of(&pool, doomed).await;
    let (taken, _changed) = take_batch(&pool, 30, 10, PROCESSOR).await.unwrap();
    let by_task = outcomes_by_task(taken);
    for (i, task) in tasks.iter().enumerate() {
        if i == 1 {
            let err = by_task[task][0].as_ref().unwrap_err();
            assert!(err.contains("injected failure"), "{err}");
        } else {
            assert_eq!(
                by_task[task],
                vec![Ok(Processed::Completed {
                    enqueued: 2,
                    task: TaskState::StepsInProcess
                })]
            );
        }
    }
    assert_eq!(
        step_row(&pool, doomed).await.0,
        "enqueued_for_orchestration"
    );
    let kept = queue_bodies(&pool, RESULTS_QUEUE).await;
    assert_eq!(kept.len(), 1, "only the failed result's message is left");
    assert_eq!(kept[0]["step_id"], json!(doomed));
}

#[sqlx::test(migrations = false)]
async fn two_results_for_one_step_in_a_batch_complete_it_once(pool: PgPool) {
    use tasker_store::result::Processed;
    use tasker_store::take::take_batch;
    migrated(&pool).await;
    ensure_results_queue(&pool).await;
    let task = create_diamond(&pool).await;
    let claimed = claim_batch(&pool, STEP_QUEUE, 30, 10, "w1", Serves::ANY)
        .await
        .unwrap();
    let msg = success_for(&claimed[0], 1, json!(9));
    // The same outcome reported twice (a worker retrying its report).
    for _ in 0..2 {
        let _changed = report(&pool, STEP_QUEUE, claimed[0].msg_id, &msg, "w1")
            .await
            .unwrap();
    }
    let (taken, _changed) = take_batch(&pool, 30, 10, PROCESSOR).await.unwrap();
    let mut outcomes = outcomes_by_task(taken).remove(&task).unwrap();
    outcomes.sort_by_key(|o| matches!(o, Ok(Processed::Stale)));
    assert_eq!(
        outcomes,
        vec![
            Ok(Processed::Completed {
                enqueued: 2,
                task: TaskState::StepsInProcess
            }),
            Ok(Processed::Stale)
        ]
    );
    let start = step_id(&pool, task, "start").await;
    let completions = count(
        &pool,
        &format!(
            "SELECT count(*) FROM tasker.step_transitions WHERE step_id = '{start}' AND to_state = 'complete'"
        ),
    )
    .await;
    assert_eq!(completions, 1);
    assert_eq!(queue_bodies(&pool, STEP_QUEUE).await.len(), 2);
}

#[sqlx::test(migrations = false)]
async fn an_unreadable_result_is_handed_back_and_a_deleted_task_takes_its_history(pool: PgPool) {
    use tasker_store::take::{take_batch, Taken};
    migrated(&pool).await;
    let tasks = diamonds_with_reported_roots(&pool, 1, |_, c| success_for(c, 1, json!(4))).await;
    let mut conn = pool.acquire().await.unwrap();
    queue::send(&mut conn, RESULTS_QUEUE, &json!({"not": "a result"}))
        .await
        .unwrap();
    let (taken, _changed) = take_batch(&pool, 30, 10, PROCESSOR).await.unwrap();
    assert_eq!(taken.len(), 2);
    assert!(matches!(taken[1], Taken::Unreadable { .. }), "{taken:?}");
    assert_eq!(
        queue_bodies(&pool, RESULTS_QUEUE).await,
        vec![json!({"not": "a result"})],
        "left for the caller to dead-letter"
    );
    // Audit rows have no foreign keys (hot-path inserts); deleting a task by
    // hand still removes its history.
    sqlx::query("DELETE FROM tasker.tasks WHERE id = $1")
        .bind(tasks[0])
        .execute(&pool)
        .await
        .unwrap();
    for table in ["task_transitions", "step_transitions", "step_results"] {
        let left = count(&pool, &format!("SELECT count(*) FROM tasker.{table}")).await;
        assert_eq!(left, 0, "{table}");
    }
}

#[sqlx::test(migrations = false)]
async fn a_success_the_set_path_cannot_parse_sends_its_batch_one_by_one(pool: PgPool) {
    use tasker_store::result::Processed;
    use tasker_store::take::{take_batch, Taken};
    migrated(&pool).await;
    diamonds_with_reported_roots(&pool, 1, |_, c| success_for(c, 1, json!(4))).await;
    // Shaped like a success, but its task id does not cast: the set path
    // raises, and the batch is read again and applied one result at a time.
    let bad = json!({
        "task_id": "not-a-uuid", "step_id": Uuid::now_v7(), "attempt": 1,
        "outcome": {"status": "success", "result": 1}, "worker_id": "w1",
        "started_at": "2026-11-27T00:00:00Z", "finished_at": "2026-11-27T00:00:01Z"
    });
    let mut conn = pool.acquire().await.unwrap();
    queue::send(&mut conn, RESULTS_QUEUE, &bad).await.unwrap();
    let (taken, _changed) = take_batch(&pool, 30, 10, PROCESSOR).await.unwrap();
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert!(
        matches!(
            &taken[0],
            Taken::Result {
                outcome: Ok(Processed::Completed { enqueued: 2, .. }),
                ..
            }
        ),
        "the good result is applied: {taken:?}"
    );
    assert!(matches!(taken[1], Taken::Unreadable { .. }), "{taken:?}");
    assert_eq!(queue_bodies(&pool, RESULTS_QUEUE).await, vec![bad]);
    assert_eq!(
        queue_bodies(&pool, STEP_QUEUE).await.len(),
        2,
        "left and right"
    );
}
