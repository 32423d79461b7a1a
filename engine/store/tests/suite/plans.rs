//! The hot path reads its rows by key whatever the tables' sizes: a claim
//! and a report make no sequential scan of `tasker.steps` or `tasker.tasks`.
//! Such a scan costs in proportion to the table (for `tasks`, a MultiXact
//! lookup per row that foreign-key checks share-locked), and the planner
//! picked one for a small table or a big one (docs/performance.md, session 14).
//! Counted per transaction in `pg_stat_xact_user_tables`.

use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::report_apply::{success, STEP_QUEUE};
use tasker_store::queue::{self, RESULTS_QUEUE};
use tasker_store::step::{claim_batch, report_and_apply_on, Serves};
use tasker_store::task::{self, Start};
use tasker_store::template::TemplateCache;
use tasker_testkit::{migrated, new_task, register_example};

/// A migrated database with `tasks` `demo/diamond` tasks, analyzed.
async fn with_diamonds(pool: &PgPool, tasks: usize) {
    migrated(pool).await;
    queue::ensure(&mut pool.acquire().await.unwrap(), RESULTS_QUEUE)
        .await
        .unwrap();
    register_example(pool, "diamond").await;
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
        task::create_batch(pool, &cache, &batch, "test")
            .await
            .unwrap();
    }
    sqlx::raw_sql("ANALYZE").execute(pool).await.unwrap();
}

/// Sequential scans of `table` so far in this transaction.
async fn seq_scans(conn: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(seq_scan), 0)::bigint FROM pg_stat_xact_user_tables
          WHERE schemaname = 'tasker' AND relname = $1",
    )
    .bind(table)
    .fetch_one(conn)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_claim_that_filters_by_handler_scans_no_table_of_steps(pool: PgPool) {
    with_diamonds(&pool, 1500).await;
    let handlers = ["math.compute".to_string()];
    let serves = Serves {
        handlers: Some(&handlers),
        components: false,
    };
    let mut tx = pool.begin().await.unwrap();
    // Prepared statements switch to a generic plan after five runs.
    for _ in 0..7 {
        let claimed = claim_batch(&mut *tx, STEP_QUEUE, 30, 2, "w1", serves)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
    }
    assert_eq!(seq_scans(&mut tx, "steps").await, 0);
    assert_eq!(seq_scans(&mut tx, "tasks").await, 0);
}

#[sqlx::test(migrations = false)]
async fn a_report_reads_tasks_by_key_while_the_tables_are_small(pool: PgPool) {
    with_diamonds(&pool, 20).await;
    let roots = claim_batch(&pool, STEP_QUEUE, 30, 20, "w1", Serves::ANY)
        .await
        .unwrap();
    assert_eq!(roots.len(), 20);
    let mut conn = pool.acquire().await.unwrap();
    // Each report on the same connection, as the worker's reporter does:
    // the functions' plans are cached after the first calls.
    for root in &roots {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        let (changed, applied) = report_and_apply_on(&mut tx, STEP_QUEUE, &[success(root)], "w1")
            .await
            .unwrap();
        assert_eq!(applied.len(), 1, "{changed:?}");
        assert_eq!(seq_scans(&mut tx, "tasks").await, 0);
        assert_eq!(seq_scans(&mut tx, "steps").await, 0);
        tx.commit().await.unwrap();
    }
}
