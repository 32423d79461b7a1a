//! Where the benchmarks run: never over data they did not create.
//!
//! `DATABASE_URL` must name a server where the user may `CREATE DATABASE`,
//! e.g. `postgres://postgres@127.0.0.1:5432/postgres`.

use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use tasker_bench::{wasm, workflow, Target};
use tasker_model::state::TaskState;
use tasker_testkit::{migrated, register_example, registry, Stack};

/// A URL of the test's database (the server's trust authentication: no password).
fn url_of(pool: &PgPool) -> String {
    url_of_options(&pool.connect_options())
}

fn url_of_options(o: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().expect("the test database has a name")
    )
}

/// A small run: seconds, even in a debug build.
fn small() -> workflow::Options {
    workflow::Options {
        linear: 2,
        diamonds: 8,
        batch: 8,
        connections: 4,
        floor_messages: 64,
        floor_hops: 3,
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// The databases on the server whose names start with `prefix`.
async fn databases_like(pool: &PgPool, prefix: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)")
        .bind(prefix)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Scratch runs of this process, one at a time (they share the name prefix
/// the tests look for).
static SCRATCH: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn scratch_prefix() -> String {
    format!("tasker_bench_{}_", std::process::id())
}

#[sqlx::test(migrations = false)]
async fn refuses_a_named_database_holding_a_task_it_did_not_create(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let stack = Stack::start(&pool, registry()).await;
    let task = stack.create("diamond", json!({ "value": 3 })).await;
    assert_eq!(stack.wait(task).await, TaskState::Complete);
    stack.stop().await;
    let templates_before = count(&pool, "SELECT count(*) FROM tasker.templates").await;

    let url = url_of(&pool);
    let name = pool.connect_options().get_database().unwrap().to_string();
    let config = tasker_testkit::config();
    let err = workflow::run(&small(), &config, &Target::Url(url.clone()))
        .await
        .expect_err("the benchmark ran over somebody's task");
    let message = format!("{err:#}");
    assert!(
        message.contains("refusing") && message.contains(&name) && message.contains("1 task"),
        "{message}"
    );

    // `bench wasm` refuses too, before it compiles anything.
    let component = std::env::temp_dir().join(format!("tasker-bench-test-{}.wasm", name));
    std::fs::write(&component, b"not a component").unwrap();
    let options = wasm::Options {
        component: Some(component.clone()),
        ..Default::default()
    };
    let err = wasm::run(&options, &config, &Target::Url(url))
        .await
        .expect_err("the wasm benchmark ran over somebody's task");
    let _ = std::fs::remove_file(&component);
    let message = format!("{err:#}");
    assert!(
        message.contains("refusing") && message.contains(&name),
        "{message}"
    );

    // The task is still there, finished, and nothing was added.
    assert_eq!(tasker_testkit::task_state(&pool, task).await, "complete");
    assert_eq!(count(&pool, "SELECT count(*) FROM tasker.tasks").await, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasker.templates").await,
        templates_before
    );
}

#[sqlx::test(migrations = false)]
async fn refuses_a_named_database_with_messages_in_its_queues(pool: PgPool) {
    migrated(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    tasker_store::queue::ensure(&mut conn, "floor_a")
        .await
        .unwrap();
    tasker_store::queue::send(&mut conn, "floor_a", &json!({ "mine": true }))
        .await
        .unwrap();
    drop(conn);
    let err = workflow::run(
        &small(),
        &tasker_testkit::config(),
        &Target::Url(url_of(&pool)),
    )
    .await
    .expect_err("the benchmark ran over somebody's messages");
    assert!(
        format!("{err:#}").contains("queue floor_a holds 1 message"),
        "{err:#}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM pgmq.q_floor_a").await, 1);
}

#[sqlx::test(migrations = false)]
async fn runs_in_an_empty_named_database_and_leaves_its_work_there(pool: PgPool) {
    migrated(&pool).await;
    let options = small();
    let report = workflow::run(
        &options,
        &tasker_testkit::config(),
        &Target::Url(url_of(&pool)),
    )
    .await
    .expect("a run in an empty database");
    assert!(!report.scratch);
    assert_eq!(report.diamonds_complete, options.diamonds as i64);
    // Linear (5 warm-up + 2), diamonds, creation alone (8 pending) and
    // creation in batches (pending): all kept.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasker.tasks").await,
        (7 + 8 + 8 + workflow::batched_creations(&options)) as i64
    );
}

#[sqlx::test(migrations = false)]
async fn a_scratch_run_leaves_the_configured_database_alone_and_drops_its_own(pool: PgPool) {
    let _one_at_a_time = SCRATCH.lock().await;
    // The configured database: an empty one, which must stay empty.
    let mut config = tasker_testkit::config();
    config.database.url = Some(url_of(&pool).into());
    let options = small();
    let report = workflow::run(&options, &config, &Target::Scratch)
        .await
        .expect("a scratch run");
    assert!(report.scratch);
    assert!(
        report.database.starts_with(&scratch_prefix()),
        "{}",
        report.database
    );
    assert_eq!(report.diamonds_complete, options.diamonds as i64);
    assert!(
        databases_like(&pool, &report.database).await.is_empty(),
        "the scratch database {} is still there",
        report.database
    );
    let touched: bool = sqlx::query_scalar("SELECT to_regnamespace('tasker') IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!touched, "the configured database was migrated");

    // Dropped after a failure too: the component does not compile.
    let component =
        std::env::temp_dir().join(format!("tasker-bench-test-{}.wasm", report.database));
    std::fs::write(&component, b"not a component").unwrap();
    let options = wasm::Options {
        component: Some(component.clone()),
        iterations: 100,
        loads: 1,
        lookups: 1,
    };
    let err = wasm::run(&options, &config, &Target::Scratch)
        .await
        .expect_err("a component that does not compile");
    let _ = std::fs::remove_file(&component);
    assert!(format!("{err:#}").contains("raw floor"), "{err:#}");
    assert_eq!(
        databases_like(&pool, &scratch_prefix()).await,
        Vec::<String>::new()
    );
}
