//! A worker's report that applies its own successes in the same transaction
//! and commit (`tasker_store::step::report_and_apply_on`), against a real
//! PostgreSQL: what it applies, what it leaves to the orchestrator, and its
//! lock order (the task first, as the orchestrator's).

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::state::TaskState;
use tasker_model::step::{Outcome, StepResultMessage};
use tasker_store::queue::{self, RESULTS_QUEUE};
use tasker_store::result::Processed;
use tasker_store::step::{claim_batch, report_and_apply_on, Claimed, Serves};
use tasker_store::task;
use tasker_store::template::TemplateCache;
use tasker_testkit::{fail_recording_results_of, migrated, new_task, register_example};

pub(super) const STEP_QUEUE: &str = "steps_demo";

/// A migrated database with the results queue and the `demo/diamond` template.
pub(super) async fn diamond_template(pool: &PgPool) {
    migrated(pool).await;
    queue::ensure(&mut pool.acquire().await.unwrap(), RESULTS_QUEUE)
        .await
        .unwrap();
    register_example(pool, "diamond").await;
}

/// [`diamond_template`] and one `demo/diamond` task.
async fn diamond(pool: &PgPool) -> Uuid {
    diamond_template(pool).await;
    let req = new_task("demo", "diamond", json!({"value": 3}));
    let (created, _changed) = task::create(pool, &TemplateCache::default(), &req, "test")
        .await
        .unwrap();
    created.task_id
}

async fn claim(pool: &PgPool) -> Vec<Claimed> {
    claim_batch(pool, STEP_QUEUE, 30, 10, "w1", Serves::ANY)
        .await
        .unwrap()
}

fn result_for(c: &Claimed, attempt: u32, outcome: Outcome) -> (i64, StepResultMessage) {
    let ctx = c.step.as_ref().expect("a runnable step");
    let msg = StepResultMessage {
        step_id: ctx.step_id,
        task_id: ctx.task_id,
        attempt,
        outcome,
        worker_id: "w1".into(),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        traceparent: None,
    };
    (c.msg_id, msg)
}

pub(super) fn success(c: &Claimed) -> (i64, StepResultMessage) {
    let n = c.step.as_ref().unwrap().step_name.len();
    result_for(c, 1, Outcome::success(json!({ "value": n })))
}

async fn apply(
    pool: &PgPool,
    outcomes: &[(i64, StepResultMessage)],
) -> (
    tasker_model::change::Changed,
    Vec<(StepResultMessage, Processed)>,
) {
    let mut conn = pool.acquire().await.unwrap();
    report_and_apply_on(&mut conn, STEP_QUEUE, outcomes, "w1")
        .await
        .unwrap()
}

async fn step(pool: &PgPool, task: Uuid, name: &str) -> (Uuid, String, Option<Value>) {
    sqlx::query_as("SELECT id, state, result FROM tasker.steps WHERE task_id = $1 AND name = $2")
        .bind(task)
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn an_applied_success_completes_its_step_and_enqueues_the_ready_children(pool: PgPool) {
    let task_id = diamond(&pool).await;
    let roots = claim(&pool).await;
    assert_eq!(roots.len(), 1);
    let (changed, applied) = apply(&pool, &[success(&roots[0])]).await;

    assert_eq!(applied.len(), 1);
    assert_eq!(
        applied[0].1,
        Processed::Completed {
            enqueued: 2,
            task: TaskState::StepsInProcess
        }
    );
    assert_eq!(
        changed.queues,
        vec![STEP_QUEUE.to_string()],
        "only the children's queue"
    );
    let (start, state, result) = step(&pool, task_id, "start").await;
    assert_eq!(
        (state.as_str(), result),
        ("complete", Some(json!({"value": 5})))
    );
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event FROM tasker.step_transitions WHERE step_id = $1 ORDER BY id",
    )
    .bind(start)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        events[events.len() - 3..],
        ["claim", "reported", "succeeded"],
        "the audit trail is the orchestrator path's"
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM tasker.step_results WHERE NOT stale"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM pgmq.q_orchestration_results").await,
        0,
        "the applied result's message is gone"
    );
    let children: Vec<String> = claim(&pool)
        .await
        .iter()
        .map(|c| c.step.as_ref().unwrap().step_name.clone())
        .collect();
    assert_eq!(children.len(), 2, "{children:?}");
}

#[sqlx::test(migrations = false)]
async fn the_last_success_finishes_the_task_once(pool: PgPool) {
    let task_id = diamond(&pool).await;
    let (_changed, _applied) = apply(&pool, &[success(&claim(&pool).await[0])]).await;
    let middle = claim(&pool).await;
    let outcomes: Vec<_> = middle.iter().map(success).collect();
    let (changed, applied) = apply(&pool, &outcomes).await;
    assert_eq!(applied.len(), 2);
    assert_eq!(
        changed.queues,
        vec![STEP_QUEUE.to_string()],
        "the join is ready"
    );
    let join = claim(&pool).await;
    assert_eq!(join[0].step.as_ref().unwrap().step_name, "join");
    let (changed, applied) = apply(&pool, &[success(&join[0])]).await;

    assert_eq!(
        applied[0].1,
        Processed::Completed {
            enqueued: 0,
            task: TaskState::Complete
        }
    );
    assert_eq!(changed.tasks, vec![(task_id, TaskState::Complete)]);
    let done: (String, bool) =
        sqlx::query_as("SELECT state, completed_at IS NOT NULL FROM tasker.tasks WHERE id = $1")
            .bind(task_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(done, ("complete".to_string(), true));
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM tasker.task_transitions WHERE to_state = 'complete'"
        )
        .await,
        1
    );
}

#[sqlx::test(migrations = false)]
async fn a_failure_in_the_batch_is_left_to_the_orchestrator(pool: PgPool) {
    use tasker_store::take::{take_batch, Taken};
    let task_id = diamond(&pool).await;
    let (_changed, _applied) = apply(&pool, &[success(&claim(&pool).await[0])]).await;
    let middle = claim(&pool).await;
    let ok = success(&middle[0]);
    let failed = result_for(&middle[1], 1, Outcome::retryable("try again"));
    let (changed, applied) = apply(&pool, &[ok.clone(), failed.clone()]).await;

    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].0.step_id, ok.1.step_id);
    assert!(
        changed.queues.contains(&RESULTS_QUEUE.to_string()),
        "{changed:?}"
    );
    let failed_name = &middle[1].step.as_ref().unwrap().step_name;
    assert_eq!(
        step(&pool, task_id, failed_name).await.1,
        "enqueued_for_orchestration",
        "reported, not applied"
    );
    let (taken, _changed) = take_batch(&pool, 30, 10, "orchestrator").await.unwrap();
    assert_eq!(taken.len(), 1);
    let Taken::Result { msg, outcome, .. } = &taken[0] else {
        panic!("{taken:?}")
    };
    assert_eq!(msg.step_id, failed.1.step_id);
    assert!(
        matches!(outcome, Ok(Processed::RetryScheduled { .. })),
        "{outcome:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_stale_success_is_recorded_as_stale_and_changes_nothing(pool: PgPool) {
    let task_id = diamond(&pool).await;
    let roots = claim(&pool).await;
    let stale = result_for(&roots[0], 7, Outcome::success(json!(1)));
    let (_changed, applied) = apply(&pool, &[stale]).await;

    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].1, Processed::Stale);
    assert_eq!(step(&pool, task_id, "start").await.1, "in_progress");
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM tasker.step_results WHERE stale"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM pgmq.q_orchestration_results").await,
        0
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM pgmq.q_steps_demo").await,
        1,
        "the current attempt's message is left alone"
    );
}

#[sqlx::test(migrations = false)]
async fn a_success_that_cannot_be_applied_goes_to_the_orchestrator(pool: PgPool) {
    use tasker_store::take::take_batch;
    let task_id = diamond(&pool).await;
    let roots = claim(&pool).await;
    let start = roots[0].step.as_ref().unwrap().step_id;
    // Fault injection: recording this step's result raises.
    fail_recording_results_of(&pool, start).await;
    let (changed, applied) = apply(&pool, &[success(&roots[0])]).await;

    assert!(applied.is_empty());
    assert_eq!(changed.queues, vec![RESULTS_QUEUE.to_string()]);
    assert_eq!(
        step(&pool, task_id, "start").await.1,
        "enqueued_for_orchestration",
        "reported; the rest rolled back"
    );
    sqlx::raw_sql("DROP TRIGGER fail_for_doomed ON tasker.step_results")
        .execute(&pool)
        .await
        .unwrap();
    let (taken, _changed) = take_batch(&pool, 30, 10, "orchestrator").await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(step(&pool, task_id, "start").await.1, "complete");
}

/// The deadlock rule: a worker that applies locks the task before it touches
/// any step, so an orchestrator holding the task lock (which then locks
/// steps) never waits for the worker.
#[sqlx::test(migrations = false)]
async fn the_report_locks_the_task_before_any_step(pool: PgPool) {
    let task_id = diamond(&pool).await;
    let roots = claim(&pool).await;
    let start = roots[0].step.as_ref().unwrap().step_id;
    let mut orchestrator = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM tasker.tasks WHERE id = $1 FOR UPDATE")
        .bind(task_id)
        .execute(&mut *orchestrator)
        .await
        .unwrap();
    let outcome = success(&roots[0]);
    let worker = {
        let pool = pool.clone();
        tokio::spawn(async move { apply(&pool, &[outcome]).await })
    };
    // The worker waits on the task's lock ...
    let mut waited = false;
    for _ in 0..500 {
        let waiting = scalar(
            &pool,
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await;
        if waiting > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waited, "the worker's report never waited for the task");
    // ... holding no step: the orchestrator can lock the step at once.
    sqlx::query("SELECT 1 FROM tasker.steps WHERE id = $1 FOR UPDATE NOWAIT")
        .bind(start)
        .execute(&mut *orchestrator)
        .await
        .expect("the step is not locked by the waiting worker");
    orchestrator.commit().await.unwrap();
    let (_changed, applied) = worker.await.unwrap();
    assert!(matches!(
        applied[0].1,
        Processed::Completed { enqueued: 2, .. }
    ));
}
