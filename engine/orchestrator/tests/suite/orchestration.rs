//! End to end: orchestrator(s) and worker(s) running in-process against a real
//! PostgreSQL, driving tasks from creation to a final state.
//!
//! Every test gets a fresh database from `#[sqlx::test]` and migrates it itself.
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::state::TaskState;
use tasker_model::step::StepError;
use tasker_model::template::Template;
use tasker_store::task::StepRow;
use tasker_store::template as templates;
use tasker_testkit::{example, migrated, new_task, register_inline, registry, task_state, Stack};
use tasker_worker::handler::rust::handler_fn;
use tasker_worker::handler::HandlerRegistry;

// ---------------------------------------------------------------- fixtures

/// The `value` each step of a `math.compute` template must produce, computed
/// from the template's ops (same rule as the handler: a root uses the input,
/// other steps the sum of their parents' values).
fn expected_values(tpl: &Template, input: i64) -> BTreeMap<String, i64> {
    fn eval(tpl: &Template, name: &str, input: i64, memo: &mut BTreeMap<String, i64>) -> i64 {
        if let Some(v) = memo.get(name) {
            return *v;
        }
        let step = tpl.steps.iter().find(|s| s.name == name).unwrap();
        let n = if step.depends_on.is_empty() {
            input
        } else {
            step.depends_on
                .iter()
                .map(|p| eval(tpl, p, input, memo))
                .sum()
        };
        let cfg = &step.handler.config;
        let operand = cfg["operand"].as_i64().unwrap_or(0);
        let v = match cfg["op"].as_str().unwrap() {
            "square" => n * n,
            "add" => n + operand,
            "multiply" => n * operand,
            other => panic!("unknown op {other}"),
        };
        memo.insert(name.to_string(), v);
        v
    }
    let mut memo = BTreeMap::new();
    for s in &tpl.steps {
        eval(tpl, &s.name, input, &mut memo);
    }
    memo
}

/// Rows of `tasker.step_results` for a step, by attempt.
async fn attempts_of(
    pool: &PgPool,
    step_id: Uuid,
) -> Vec<(i32, String, DateTime<Utc>, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT attempt, outcome, started_at, finished_at FROM tasker.step_results
          WHERE step_id = $1 ORDER BY attempt, id",
    )
    .bind(step_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A one-step template in `demo` with the given handler and step options.
fn one_step(name: &str, handler: &str, options: &str) -> String {
    format!(
        "namespace: demo\nname: {name}\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: {{ name: {handler} }}\n{options}"
    )
}

/// Runs a one-step task whose handler fails and returns the step row.
async fn run_failing(pool: &PgPool, registry: HandlerRegistry, yaml: &str) -> (Uuid, StepRow) {
    let tpl = register_inline(pool, yaml).await;
    let h = Stack::start(pool, registry).await;
    let id = h.create(&tpl.name, json!({})).await;
    assert_eq!(h.wait(id).await, TaskState::BlockedByFailures);
    let step = h.steps(id).await.remove("only").unwrap();
    h.stop().await;
    (id, step)
}

// ---------------------------------------------------------------- DAG shapes

/// Runs an example template with `math.compute` and checks every step's value.
async fn check_example(pool: PgPool, name: &str, input: i64, documented_leaf: Option<(&str, i64)>) {
    migrated(&pool).await;
    let tpl = example(name);
    templates::register(&pool, &tpl).await.unwrap();

    // The same shape with a handler reporting which parents it saw.
    let mut probe = tpl.clone();
    probe.name = format!("{name}_parents");
    for s in &mut probe.steps {
        s.handler.name = "test.parents".into();
        s.handler.config = json!({});
    }
    templates::register(&pool, &probe).await.unwrap();
    let reg = registry();
    reg.register(
        "test.parents",
        handler_fn(|ctx, _| async move {
            Ok(json!({ "parents": ctx.parent_results.keys().collect::<Vec<_>>() }))
        }),
    );

    let h = Stack::start(&pool, reg).await;
    let id = h.create(name, json!({ "value": input })).await;
    let probe_id = h.create(&probe.name, json!({ "value": input })).await;
    assert_eq!(h.wait(id).await, TaskState::Complete);
    assert_eq!(h.wait(probe_id).await, TaskState::Complete);

    let expected = expected_values(&tpl, input);
    let steps = h.steps(id).await;
    assert_eq!(steps.len(), tpl.steps.len());
    for (step, value) in &expected {
        let row = &steps[step];
        assert_eq!(row.state, "complete", "{step}");
        assert_eq!(row.attempts, 1, "{step}");
        assert_eq!(row.result, Some(json!({ "value": value })), "{step}");
    }
    if let Some((leaf, value)) = documented_leaf {
        assert_eq!(expected[leaf], value, "template comment vs computed");
    }

    let probed = h.steps(probe_id).await;
    for s in &probe.steps {
        let mut parents = s.depends_on.clone();
        parents.sort();
        assert_eq!(
            probed[&s.name].result,
            Some(json!({ "parents": parents })),
            "parents seen by {}",
            s.name
        );
    }
    assert_eq!(task_state(&pool, id).await, "complete");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn linear_completes_with_right_values(pool: PgPool) {
    check_example(pool, "linear", 3, Some(("d", 400))).await;
}

#[sqlx::test(migrations = false)]
async fn diamond_completes_with_right_values(pool: PgPool) {
    check_example(pool, "diamond", 3, Some(("join", 784))).await;
}

#[sqlx::test(migrations = false)]
async fn tree_completes_with_right_values(pool: PgPool) {
    // root 9; branch_a 10, branch_b 11; leaves 20, 30, 121, 21.
    check_example(pool, "tree", 3, Some(("leaf_b1", 121))).await;
}

#[sqlx::test(migrations = false)]
async fn mixed_dag_completes_with_right_values(pool: PgPool) {
    check_example(pool, "mixed_dag", 2, Some(("finish", 61))).await;
}

// ---------------------------------------------------------------- failures

#[sqlx::test(migrations = false)]
async fn retry_with_linear_backoff_then_success(pool: PgPool) {
    migrated(&pool).await;
    let tpl = register_inline(
        &pool,
        &one_step(
            "flaky",
            "test.flaky",
            "    retry: { max_attempts: 3, backoff: linear, base_ms: 200, max_ms: 1000 }\n",
        ),
    )
    .await;
    let reg = registry();
    reg.register(
        "test.flaky",
        handler_fn(|ctx, _| async move {
            if ctx.attempt < 3 {
                Err(StepError::retryable(format!("attempt {}", ctx.attempt)))
            } else {
                Ok(json!({ "ok": ctx.attempt }))
            }
        }),
    );
    let h = Stack::start(&pool, reg).await;
    let id = h.create(&tpl.name, json!({})).await;
    assert_eq!(h.wait(id).await, TaskState::Complete);
    let step = h.steps(id).await.remove("only").unwrap();
    assert_eq!(step.state, "complete");
    assert_eq!(step.attempts, 3);
    assert_eq!(step.result, Some(json!({ "ok": 3 })));

    let rows = attempts_of(&pool, step.id).await;
    let outcomes: Vec<(i32, &str)> = rows.iter().map(|r| (r.0, r.1.as_str())).collect();
    assert_eq!(
        outcomes,
        vec![
            (1, "retryable_error"),
            (2, "retryable_error"),
            (3, "success")
        ]
    );
    let gap1 = rows[1].2 - rows[0].3;
    let gap2 = rows[2].2 - rows[1].3;
    assert!(gap1.num_milliseconds() >= 200, "gap 1→2 {gap1}");
    assert!(gap2.num_milliseconds() >= 400, "gap 2→3 {gap2}");
    h.stop().await;
}

#[sqlx::test(migrations = false)]
async fn retries_exhausted_block_the_task(pool: PgPool) {
    migrated(&pool).await;
    let reg = registry();
    reg.register(
        "test.always_fails",
        handler_fn(|_, _| async move { Err(StepError::retryable("nope")) }),
    );
    let (_, step) = run_failing(
        &pool,
        reg,
        &one_step(
            "exhausted",
            "test.always_fails",
            "    retry: { max_attempts: 2, backoff: none }\n",
        ),
    )
    .await;
    assert_eq!(step.state, "error");
    assert_eq!(step.attempts, 2);
    assert_eq!(attempts_of(&pool, step.id).await.len(), 2);
}

#[sqlx::test(migrations = false)]
async fn permanent_error_is_not_retried(pool: PgPool) {
    migrated(&pool).await;
    let reg = registry();
    reg.register(
        "test.permanent",
        handler_fn(|_, _| async move { Err(StepError::permanent("bad input")) }),
    );
    let (_, step) = run_failing(
        &pool,
        reg,
        &one_step(
            "permanent",
            "test.permanent",
            "    retry: { max_attempts: 5, backoff: none }\n",
        ),
    )
    .await;
    assert_eq!(step.state, "error");
    assert_eq!(step.attempts, 1);
    let rows = attempts_of(&pool, step.id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "permanent_error");
    assert_eq!(step.last_error.as_ref().unwrap()["message"], "bad input");
}

#[sqlx::test(migrations = false)]
async fn handler_timeout_fails_the_step(pool: PgPool) {
    migrated(&pool).await;
    let reg = registry();
    reg.register(
        "test.sleepy",
        handler_fn(|_, _| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(json!({}))
        }),
    );
    let started = std::time::Instant::now();
    let (_, step) = run_failing(
        &pool,
        reg,
        &one_step(
            "sleepy",
            "test.sleepy",
            "    retry: { max_attempts: 1 }\n    timeout_seconds: 1\n",
        ),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(step.state, "error");
    assert_eq!(step.attempts, 1);
    assert_eq!(step.last_error.as_ref().unwrap()["kind"], "timeout");
}

// ---------------------------------------------------------------- concurrency

#[sqlx::test(migrations = false)]
async fn two_orchestrators_two_workers_exactly_once(test_pool: PgPool) {
    // Four processes' worth of actors need more connections than the small
    // pool #[sqlx::test] hands out (which ran dry: PoolTimedOut).
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(60)
        .connect_with((*test_pool.connect_options()).clone())
        .await
        .unwrap();
    migrated(&pool).await;
    let tpl = example("diamond");
    templates::register(&pool, &tpl).await.unwrap();
    let h = Stack::builder(&pool)
        .orchestrators(2)
        .workers(2)
        .start()
        .await;

    let creates = (0..100i64).map(|i| {
        let orch = h.orchestrators()[i as usize % 2].clone();
        tokio::spawn(async move {
            let req = new_task("demo", "diamond", json!({ "value": i }));
            (i, orch.create_task(req).await.unwrap().task_id)
        })
    });
    let ids: Vec<(i64, Uuid)> = futures::future::join_all(creates)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let watcher = h.watcher().await;
    let waits = ids
        .iter()
        .map(|(_, id)| watcher.wait(*id, Duration::from_secs(40)));
    for state in futures::future::join_all(waits).await {
        assert_eq!(state.unwrap(), TaskState::Complete);
    }

    for (i, id) in &ids {
        let steps = h.steps(*id).await;
        assert_eq!(
            steps["join"].result,
            Some(json!({ "value": expected_values(&tpl, *i)["join"] }))
        );
    }

    let completions: HashMap<Uuid, i64> = sqlx::query_as(
        "SELECT task_id, count(*) FROM tasker.task_transitions
          WHERE to_state = 'complete' GROUP BY task_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(completions.len(), 100);
    for (_, id) in &ids {
        assert_eq!(completions.get(id), Some(&1), "task {id}");
    }

    let step_completions: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT s.id, count(t.id) FROM tasker.steps s
           LEFT JOIN tasker.step_transitions t ON t.step_id = s.id AND t.to_state = 'complete'
          GROUP BY s.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(step_completions.len(), 400);
    for (step, n) in &step_completions {
        assert_eq!(*n, 1, "step {step} completed {n} times");
    }

    let duplicates: Vec<(Uuid, Option<String>, String, i32, i64)> = sqlx::query_as(
        "SELECT step_id, from_state, to_state, attempt, count(*) FROM tasker.step_transitions
          GROUP BY step_id, from_state, to_state, attempt HAVING count(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(duplicates.is_empty(), "{duplicates:?}");
    h.stop().await;
    // This test's own pool: closed here, or its connections keep the test
    // database from being dropped.
    pool.close().await;
}
