//! Rate limits in the store: defining them (`limit::set`, `delete`) and the
//! claim's enforcement (`sql/claim_steps.sql`): a bucket per limit and key,
//! refused messages deferred (hidden, no read counted) and claimable later.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use tasker_store::limit;
use tasker_store::step::{claim_batch, claim_with_deferrals, Serves};
use tasker_store::task;
use tasker_store::template::TemplateCache;
use tasker_store::StoreError;
use tasker_testkit::{migrated, new_task, register_inline};

const STEP_QUEUE: &str = "steps_rl";

/// One step under the limit `five`, keyed by the input's customer when
/// `keyed`; the second template names a limit nobody defines.
const TEMPLATES: &str = r#"
namespace: rl
name: one
version: 1.0.0
steps:
  - { name: call, handler: { name: h }, rate_limit: { name: five } }
"#;
const KEYED: &str = r#"
namespace: rl
name: keyed
version: 1.0.0
steps:
  - { name: call, handler: { name: h }, rate_limit: { name: five, key: input.customer.id } }
"#;
const UNDEFINED: &str = r#"
namespace: rl
name: undefined
version: 1.0.0
steps:
  - { name: call, handler: { name: h }, rate_limit: { name: nobody_defined_me } }
"#;

async fn setup(pool: &PgPool) {
    migrated(pool).await;
    for t in [TEMPLATES, KEYED, UNDEFINED] {
        register_inline(pool, t).await;
    }
}

async fn create(pool: &PgPool, name: &str, context: Value) -> Uuid {
    let (created, _) = task::create(
        pool,
        &TemplateCache::default(),
        &new_task("rl", name, context),
        "t",
    )
    .await
    .unwrap();
    created.task_id
}

/// The tasks of the steps one claim of `qty` starts.
async fn claim(pool: &PgPool, qty: i32) -> Vec<Uuid> {
    claim_batch(pool, STEP_QUEUE, 30, qty, "w", Serves::ANY)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.step.map(|s| s.task_id))
        .collect()
}

/// Claims every 20 ms for `run`; returns how many steps started.
async fn claim_for(pool: &PgPool, run: Duration) -> usize {
    let start = Instant::now();
    let mut started = 0;
    while start.elapsed() < run {
        started += claim(pool, 10).await.len();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started
}

#[sqlx::test(migrations = false)]
async fn a_5_per_second_limit_starts_at_most_11_steps_in_2_seconds(pool: PgPool) {
    setup(&pool).await;
    limit::set(&pool, "five", 5.0, 1).await.unwrap();
    for _ in 0..40 {
        create(&pool, "one", json!({})).await;
    }
    let started = claim_for(&pool, Duration::from_secs(2)).await;
    eprintln!("started in 2 s at 5/s: {started}");
    assert!(started <= 5 * 2 + 1, "{started} started in 2 s");
    assert!(started >= 5 * 2 - 2, "only {started} started in 2 s");

    // The refused ones were deferred: hidden, no read counted, no attempt.
    let batch = claim_with_deferrals(&pool, STEP_QUEUE, 30, 10, "w", Serves::ANY)
        .await
        .unwrap();
    assert!(batch.deferred.iter().all(|d| d.limit == "five"));
    let reads: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pgmq.q_steps_rl q JOIN tasker.steps s ON s.id = (q.message->>'step_id')::uuid
          WHERE s.state = 'enqueued' AND q.read_ct > 0",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let started_total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.steps WHERE state = 'in_progress' AND attempts = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reads, 0, "a deferred message is not counted as a read");
    assert_eq!(
        started_total as usize,
        started + batch.claimed.len(),
        "every started step was claimed once"
    );
    let untouched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.steps WHERE state = 'enqueued' AND attempts = 0",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        untouched,
        40 - started_total,
        "no attempt spent by a deferral"
    );
}

#[sqlx::test(migrations = false)]
async fn each_key_has_its_own_rate(pool: PgPool) {
    setup(&pool).await;
    limit::set(&pool, "five", 5.0, 1).await.unwrap();
    let mut by_customer = std::collections::HashMap::new();
    for i in 0..30 {
        let customer = ["a", "b"][i % 2];
        let id = create(&pool, "keyed", json!({"customer": {"id": customer}})).await;
        by_customer.insert(id, customer);
    }
    // A task whose input lacks the key shares the empty key's bucket.
    for _ in 0..5 {
        let id = create(&pool, "keyed", json!({"other": 1})).await;
        by_customer.insert(id, "");
    }
    let start = Instant::now();
    let mut started: std::collections::HashMap<&str, usize> = Default::default();
    while start.elapsed() < Duration::from_secs(2) {
        for id in claim(&pool, 10).await {
            *started.entry(by_customer[&id]).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("started in 2 s at 5/s per customer: {started:?}");
    for customer in ["a", "b", ""] {
        let n = started.get(customer).copied().unwrap_or(0);
        let most = if customer.is_empty() { 5 } else { 11 };
        assert!(n <= most, "customer {customer:?}: {n}");
        assert!(n >= most.min(8), "customer {customer:?}: only {n}");
    }
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT key FROM tasker.rate_buckets WHERE name = 'five' ORDER BY key")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(keys, vec!["", "a", "b"]);
}

#[sqlx::test(migrations = false)]
async fn an_undefined_limit_and_a_deleted_one_limit_nothing(pool: PgPool) {
    setup(&pool).await;
    for _ in 0..12 {
        create(&pool, "undefined", json!({})).await;
    }
    assert_eq!(claim(&pool, 12).await.len(), 12, "no such limit: unlimited");

    limit::set(&pool, "five", 5.0, 1).await.unwrap();
    for _ in 0..12 {
        create(&pool, "one", json!({})).await;
    }
    assert_eq!(claim(&pool, 12).await.len(), 1, "burst 1: one at once");
    assert!(limit::delete(&pool, "five").await.unwrap());
    assert!(!limit::delete(&pool, "five").await.unwrap(), "gone already");
    let buckets: i64 = sqlx::query_scalar("SELECT count(*) FROM tasker.rate_buckets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(buckets, 0, "deleting a limit deletes its buckets");
    // The deferred ones come back when their time is up, unlimited now.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert_eq!(claim(&pool, 12).await.len(), 11);
}

#[sqlx::test(migrations = false)]
async fn refused_messages_keep_their_read_count_and_are_claimed_later(pool: PgPool) {
    setup(&pool).await;
    limit::set(&pool, "five", 5.0, 3).await.unwrap();
    let tasks: Vec<Uuid> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(create(&pool, "one", json!({})).await);
        }
        v
    };
    let batch = claim_with_deferrals(&pool, STEP_QUEUE, 30, 10, "w", Serves::ANY)
        .await
        .unwrap();
    let mut started: Vec<Uuid> = batch
        .claimed
        .iter()
        .filter_map(|c| c.step.as_ref().map(|s| s.task_id))
        .collect();
    started.sort();
    let mut first = tasks[..3].to_vec();
    first.sort();
    assert_eq!(started, first, "burst 3: the first three in rank order");
    assert_eq!(batch.deferred.len(), 2);
    // The refused wait for their own token: 200 ms, then 400 ms.
    let mut waits: Vec<f64> = batch.deferred.iter().map(|d| d.seconds).collect();
    waits.sort_by(f64::total_cmp);
    assert!(
        (0.1..=0.25).contains(&waits[0]) && (0.3..=0.45).contains(&waits[1]),
        "{waits:?}"
    );
    assert_eq!(batch.next_in(), Some(Duration::from_secs_f64(waits[0])));
    let read_cts: Vec<i32> = sqlx::query_scalar(
        "SELECT read_ct FROM pgmq.q_steps_rl WHERE vt < clock_timestamp() + interval '10 s' ORDER BY msg_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(read_cts, vec![0, 0], "deferred: not counted as reads");
    assert!(claim(&pool, 10).await.is_empty(), "hidden until their turn");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let mut later = claim(&pool, 10).await;
    later.sort();
    let mut rest = tasks[3..].to_vec();
    rest.sort();
    assert_eq!(later, rest, "claimed later");
    let attempts: Vec<i32> = sqlx::query_scalar(
        "SELECT attempts FROM tasker.steps WHERE task_id = ANY ($1) ORDER BY attempts",
    )
    .bind(&tasks)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(attempts, vec![1; 5], "one attempt each");
}

#[sqlx::test(migrations = false)]
async fn setting_and_deleting_limits_validate_their_input(pool: PgPool) {
    migrated(&pool).await;
    let (l, created) = limit::set(&pool, "payments", 100.0, 10).await.unwrap();
    assert!(created);
    assert_eq!(
        (l.name.as_str(), l.per_second, l.burst),
        ("payments", 100.0, 10)
    );
    let (l, created) = limit::set(&pool, "payments", 0.5, 1).await.unwrap();
    assert!(!created, "a second set changes it");
    assert_eq!((l.per_second, l.burst), (0.5, 1));
    assert_eq!(limit::list(&pool).await.unwrap(), vec![l.clone()]);
    assert_eq!(limit::get(&pool, "payments").await.unwrap(), Some(l));
    assert_eq!(limit::get(&pool, "nothing").await.unwrap(), None);

    let field = |e: StoreError| match e {
        StoreError::InvalidRequest { field, reason } => format!("{field}: {reason}"),
        other => panic!("not a validation error: {other}"),
    };
    for (name, per_second, burst, expect) in [
        ("Payments", 1.0, 1, "name: bad rate limit name `Payments`"),
        (
            "",
            1.0,
            1,
            "name: bad rate limit name ``: must not be empty",
        ),
        ("p", 0.0, 1, "per_second: a rate must be at least 1/h"),
        ("p", -3.0, 1, "per_second: a rate must be at least 1/h"),
        (
            "p",
            f64::INFINITY,
            1,
            "per_second: a rate must be at least 1/h",
        ),
        ("p", 2e6, 1, "per_second: a rate must be at most"),
        (
            "p",
            1.0,
            0,
            "burst: burst must be between 1 and 1000000, not 0",
        ),
        ("p", 1.0, 2_000_000, "burst: burst must be between 1"),
    ] {
        let e = field(
            limit::set(&pool, name, per_second, burst)
                .await
                .unwrap_err(),
        );
        assert!(e.starts_with(expect), "{name} {per_second} {burst}: {e}");
    }
    assert!(field(limit::delete(&pool, "No").await.unwrap_err()).starts_with("name: "));
    assert_eq!(
        limit::list(&pool).await.unwrap().len(),
        1,
        "nothing else was stored"
    );
}

#[sqlx::test(migrations = false)]
async fn registering_a_template_records_its_limited_steps(pool: PgPool) {
    setup(&pool).await;
    let rows: Vec<(String, String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT tp.name, l.limit_name, l.key_path FROM tasker.template_step_limits l
           JOIN tasker.templates tp ON tp.id = l.template_id ORDER BY tp.name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "keyed".into(),
                "five".into(),
                Some(vec!["customer".into(), "id".into()])
            ),
            ("one".into(), "five".into(), None),
            ("undefined".into(), "nobody_defined_me".into(), None),
        ]
    );
    // Idle buckets (full again) can go: nothing changes for the claim.
    limit::set(&pool, "five", 1000.0, 1).await.unwrap();
    create(&pool, "one", json!({})).await;
    assert_eq!(claim(&pool, 1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(limit::prune_idle_buckets(&pool).await.unwrap(), 1);
}
