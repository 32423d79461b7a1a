//! Creating tasks in batches (`tasker_store::task::create_batch`): all of
//! them in one transaction, or none, the refused task named by its position.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use serde_json::json;
use sqlx::PgPool;

use tasker_store::task::{self, Start, MAX_BATCH};
use tasker_store::template::TemplateCache;
use tasker_store::StoreError;
use tasker_testkit::{migrated, new_task, register_example};

const PROCESSOR: &str = "test-processor";

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Rows of every table a creation writes, and messages sent.
async fn written(pool: &PgPool) -> [i64; 5] {
    [
        count(pool, "SELECT count(*) FROM tasker.tasks").await,
        count(pool, "SELECT count(*) FROM tasker.steps").await,
        count(pool, "SELECT count(*) FROM tasker.step_edges").await,
        count(pool, "SELECT count(*) FROM tasker.task_transitions").await,
        count(pool, "SELECT count(*) FROM pgmq.q_steps_demo").await,
    ]
}

#[sqlx::test(migrations = false)]
async fn a_batch_creates_every_task_as_one_by_one_would(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    register_example(&pool, "linear").await;
    let cache = TemplateCache::default();
    let batch: Vec<_> = (0..5)
        .map(|i| {
            let name = if i % 2 == 0 { "diamond" } else { "linear" };
            (
                new_task("demo", name, json!({"value": i})),
                Start::default(),
            )
        })
        .collect();
    let (created, changed) = task::create_batch(&pool, &cache, &batch, PROCESSOR)
        .await
        .unwrap();
    assert_eq!(created.len(), 5);
    assert!(created.iter().all(|c| c.created));
    assert_eq!(changed.queues, vec!["steps_demo".to_string()]);
    // In the batch's order, each with its own template and input.
    for (c, (req, _)) in created.iter().zip(&batch) {
        let (name, value): (String, serde_json::Value) = sqlx::query_as(
            "SELECT tp.name, t.context->'value' FROM tasker.tasks t
               JOIN tasker.templates tp ON tp.id = t.template_id WHERE t.id = $1",
        )
        .bind(c.task_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            (name.as_str(), &value),
            (req.name.as_str(), &req.context["value"])
        );
    }
    // 3 diamonds (4 steps, 4 edges) and 2 linear tasks (4 steps, 3 edges);
    // one root message each, 4 creation transitions each.
    assert_eq!(written(&pool).await, [5, 20, 18, 20, 5]);
}

#[sqlx::test(migrations = false)]
async fn a_refused_task_refuses_the_batch_and_names_its_position(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let good = || {
        (
            new_task("demo", "diamond", json!({"value": 1})),
            Start::default(),
        )
    };
    let cases: Vec<(usize, (task::NewTask, Start), &str)> = vec![
        // Refused by the template's input schema, when the statements run.
        (
            2,
            (
                new_task("demo", "diamond", json!({"value": "x"})),
                Start::default(),
            ),
            "input rejected",
        ),
        (
            1,
            (new_task("demo", "nope", json!({})), Start::default()),
            "not registered",
        ),
        (
            3,
            (
                new_task("demo", "diamond", json!({"value": 1})),
                Start {
                    run_at: None,
                    delay_seconds: Some(10 * 366 * 86_400),
                },
            ),
            "at most",
        ),
    ];
    for (at, bad, says) in cases {
        let mut batch = vec![good(), good(), good(), good()];
        batch[at] = bad;
        let err = task::create_batch(&pool, &cache, &batch, PROCESSOR)
            .await
            .unwrap_err();
        match &err {
            StoreError::InBatch { index, source } => {
                assert_eq!(*index, at, "{err}");
                assert!(source.to_string().contains(says), "{err}");
                assert!(
                    err.to_string().starts_with(&format!("tasks[{at}]: ")),
                    "{err}"
                );
            }
            other => panic!("expected InBatch, got {other:?}"),
        }
        assert_eq!(
            written(&pool).await,
            [0; 5],
            "nothing of the batch is written"
        );
    }
    // A bad idempotency key fails in the middle of the transaction, after
    // earlier tasks were inserted: they are rolled back.
    let mut batch = vec![good(), good(), good()];
    batch[2].0.idempotency_key = Some(String::new());
    let err = task::create_batch(&pool, &cache, &batch, PROCESSOR)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InBatch { index: 2, .. }), "{err}");
    assert_eq!(written(&pool).await, [0; 5]);
}

#[sqlx::test(migrations = false)]
async fn batch_sizes_outside_the_limit_are_refused(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let one = (
        new_task("demo", "diamond", json!({"value": 1})),
        Start::default(),
    );
    for n in [0, MAX_BATCH + 1] {
        let err = task::create_batch(&pool, &cache, &vec![one.clone(); n], PROCESSOR)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidRequest { field, .. } if field == "tasks"),
            "{err}"
        );
    }
    // Steps are counted too: 1,000 tasks of 51 steps are over MAX_BATCH_STEPS.
    let mut wide = String::from("namespace: demo\nname: wide\nversion: 1.0.0\nsteps:\n");
    for i in 0..51 {
        wide.push_str(&format!("  - {{ name: s{i}, handler: {{ name: h }} }}\n"));
    }
    tasker_testkit::register_inline(&pool, &wide).await;
    let wide = (new_task("demo", "wide", json!({})), Start::default());
    let err = task::create_batch(&pool, &cache, &vec![wide; MAX_BATCH], PROCESSOR)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("at most {}", task::MAX_BATCH_STEPS)),
        "{err}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM tasker.tasks").await, 0);
    let (created, _) = task::create_batch(&pool, &cache, &vec![one; MAX_BATCH], PROCESSOR)
        .await
        .unwrap();
    assert_eq!(created.len(), MAX_BATCH);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasker.tasks").await,
        MAX_BATCH as i64
    );
}

#[sqlx::test(migrations = false)]
async fn an_idempotency_key_repeated_in_a_batch_makes_one_task(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let keyed = |key: &str| {
        let mut t = new_task("demo", "diamond", json!({"value": 2}));
        t.idempotency_key = Some(key.into());
        (t, Start::default())
    };
    // "a" exists before the batch; "b" appears twice in it.
    let (_first, _changed) = task::create(&pool, &cache, &keyed("a").0, PROCESSOR)
        .await
        .unwrap();
    let batch = vec![keyed("a"), keyed("b"), keyed("b"), keyed("c")];
    let (created, _) = task::create_batch(&pool, &cache, &batch, PROCESSOR)
        .await
        .unwrap();
    let flags: Vec<bool> = created.iter().map(|c| c.created).collect();
    assert_eq!(flags, [false, true, false, true]);
    assert_eq!(created[1].task_id, created[2].task_id);
    assert_eq!(count(&pool, "SELECT count(*) FROM tasker.tasks").await, 3);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pgmq.q_steps_demo").await,
        3
    );
}

/// A root's message: body, seconds until visible, rank minus its task's
/// start, its trace header, its task's trace.
type SentRoot = (serde_json::Value, f64, Option<f64>, Option<String>, String);

#[sqlx::test(migrations = false)]
async fn roots_in_several_pools_are_sent_with_each_tasks_start_priority_and_trace(pool: PgPool) {
    migrated(&pool).await;
    tasker_testkit::register_inline(
        &pool,
        "namespace: mix\nname: two\nversion: 1.0.0\nsteps:\n\
         - { name: a, handler: { name: h.a }, pool: left }\n\
         - { name: b, handler: { name: h.b }, pool: right }\n",
    )
    .await;
    for q in ["steps_left", "steps_right"] {
        let mut conn = pool.acquire().await.unwrap();
        tasker_store::queue::ensure(&mut conn, q).await.unwrap();
    }
    let cache = TemplateCache::default();
    let now = (new_task("mix", "two", json!({})), Start::default());
    let mut later = (
        new_task("mix", "two", json!({})),
        Start {
            run_at: None,
            delay_seconds: Some(3600),
        },
    );
    later.0.priority = 5;
    let (created, changed) = task::create_batch(&pool, &cache, &[now, later], PROCESSOR)
        .await
        .unwrap();
    let mut queues = changed.queues.clone();
    queues.sort();
    assert_eq!(queues, ["steps_left", "steps_right"]);
    for q in ["steps_left", "steps_right"] {
        let rows: Vec<SentRoot> = sqlx::query_as(&format!(
            "SELECT m.message, extract(epoch FROM m.vt - now())::float8,
                    (m.message->>'rank')::float8 - extract(epoch FROM t.run_at)::float8,
                    m.headers->>'traceparent', t.traceparent
               FROM pgmq.q_{q} m JOIN tasker.tasks t ON t.id = (m.message->>'task_id')::uuid
              ORDER BY t.id"
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 2, "{q}");
        for ((message, _, _, header, trace), c) in rows.iter().zip(&created) {
            assert_eq!(message["task_id"], json!(c.task_id), "{q}");
            let mut keys: Vec<&String> = message.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(keys, ["rank", "step_id", "task_id"], "{q}: {message}");
            assert_eq!(header.as_deref(), Some(trace.as_str()), "{q}");
        }
        assert!(
            rows[0].1 < 5.0,
            "{q}: the first task's roots are visible at once"
        );
        assert!(
            (rows[1].1 - 3600.0).abs() < 60.0,
            "{q}: the second's in an hour: {}",
            rows[1].1
        );
        let rank = rows[1].2.unwrap();
        assert!(
            (rank + 5.0).abs() < 1e-3,
            "{q}: rank = its start - priority: {rank}"
        );
    }
}
