//! The hot path reads its rows by key whatever the tables' sizes: a claim
//! and a report make no sequential scan of `tasker.steps` or `tasker.tasks`.
//! Such a scan costs in proportion to the table (for `tasks`, a MultiXact
//! lookup per row that foreign-key checks share-locked), and the planner
//! picked one for a small table or a big one (docs/performance.md, session 14).
//! Counted with `pg_stat_get_numscans` and the backend's pending count.
//!
//! Sequential scans of the tiny tables are allowed (`tasker.pauses`,
//! `tasker.rate_limits`: an empty table's probe).

use std::time::Duration;

use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::report_apply::{diamond_template, success, STEP_QUEUE};
use tasker_store::step::{claim_batch, report_and_apply_on, Serves};
use tasker_store::task::{self, Start};
use tasker_store::template::TemplateCache;
use tasker_store::vacuum;
use tasker_testkit::new_task;

/// `tasks` more `demo/diamond` tasks.
async fn add_diamonds(pool: &PgPool, tasks: usize) {
    let cache = TemplateCache::default();
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| {
                (
                    new_task("demo", "diamond", json!({"value": i % 100})),
                    Start::default(),
                )
            })
            .collect();
        let (_created, _changed) = task::create_batch(pool, &cache, &batch, "test")
            .await
            .unwrap();
    }
}

/// Sequential scans of `table` so far, flushed or not: its shared count plus
/// this backend's pending one (a flush moves the one into the other).
async fn seq_scans(conn: &mut PgConnection, table: &str) -> i64 {
    let (_, n): (String, i64) = sqlx::query_as(
        "SELECT set_config('stats_fetch_consistency', 'none', false),
                pg_stat_get_numscans(('tasker.' || $1)::regclass)
                + pg_stat_get_xact_numscans(('tasker.' || $1)::regclass)",
    )
    .bind(table)
    .fetch_one(conn)
    .await
    .unwrap();
    n
}

/// A prepared statement's plan is made once (generic after five runs) and
/// kept until the next analyze: here it is made from statistics that say the
/// tables are nearly empty, and then they grow, as in a new database's first
/// minute.
#[sqlx::test(migrations = false)]
async fn claims_planned_from_an_empty_database_scan_no_table_once_it_is_analyzed_again(
    pool: PgPool,
) {
    diamond_template(&pool).await;
    add_diamonds(&pool, 3).await;
    // Analyzed while nearly empty, as autovacuum (or the vacuum sweep) does
    // early in a new database's life.
    sqlx::raw_sql("ANALYZE").execute(&pool).await.unwrap();
    let handlers = ["math.compute".to_string()];
    let serves = Serves {
        handlers: Some(&handlers),
        components: false,
    };
    let mut conn = pool.acquire().await.unwrap();
    for _ in 0..8 {
        claim_batch(&mut *conn, STEP_QUEUE, 30, 2, "w1", serves)
            .await
            .unwrap();
    }
    // On a connection of its own, whose table statistics are then flushed
    // (a backend sends them at most once a second): the sweep reads them.
    let writer = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    add_diamonds(&writer, 1500).await;
    sqlx::raw_sql("SELECT pg_stat_force_next_flush(); SELECT 1;")
        .execute(&writer)
        .await
        .unwrap();
    // The plan the statistics of an empty database made scans tasker.steps per
    // message; the vacuum sweep's analyze of the tables that grew (any
    // orchestrator, every `vacuum_interval_seconds`) replaces it.
    let analyzed = vacuum::vacuum_churned_tables(&pool, Duration::ZERO)
        .await
        .unwrap();
    assert!(
        analyzed.contains(&"tasker.steps".to_string()),
        "{analyzed:?}"
    );
    let steps_before = seq_scans(&mut conn, "steps").await;
    let tasks_before = seq_scans(&mut conn, "tasks").await;
    for _ in 0..5 {
        let claimed = claim_batch(&mut *conn, STEP_QUEUE, 30, 2, "w1", serves)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(claimed.iter().all(|c| c.step.is_some()));
    }
    assert_eq!(seq_scans(&mut conn, "steps").await - steps_before, 0);
    assert_eq!(seq_scans(&mut conn, "tasks").await - tasks_before, 0);
}

#[sqlx::test(migrations = false)]
async fn a_report_reads_tasks_by_key_while_the_tables_are_small(pool: PgPool) {
    diamond_template(&pool).await;
    add_diamonds(&pool, 20).await;
    sqlx::raw_sql("ANALYZE").execute(&pool).await.unwrap();
    let roots = claim_batch(&pool, STEP_QUEUE, 30, 20, "w1", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(roots.len(), 20);
    let mut conn = pool.acquire().await.unwrap();
    // Each report on the same connection, as the worker's reporter does:
    // the functions' plans are cached after the first calls.
    for root in &roots {
        let (tasks, steps) = (
            seq_scans(&mut conn, "tasks").await,
            seq_scans(&mut conn, "steps").await,
        );
        let (changed, applied) = report_and_apply_on(&mut conn, STEP_QUEUE, &[success(root)], "w1")
            .await
            .unwrap();
        assert_eq!(applied.len(), 1, "{changed:?}");
        assert_eq!(seq_scans(&mut conn, "tasks").await - tasks, 0);
        assert_eq!(seq_scans(&mut conn, "steps").await - steps, 0);
    }
}
