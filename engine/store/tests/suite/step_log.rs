//! Handler logs per attempt (`tasker_store::step_log`) against a real
//! PostgreSQL: a batch in one statement, written once per attempt, read back
//! by step name or id in attempt order, NULs kept out of `jsonb`, and the
//! rows gone with their step. Run with
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_model::step::log::{AttemptLines, AttemptLog, LogLevel};
use tasker_store::step_log::{self, AttemptLogRow};
use tasker_store::task;
use tasker_store::template::TemplateCache;
use tasker_testkit::{migrated, new_task, register_example, steps};

async fn diamond(pool: &PgPool) -> Uuid {
    migrated(pool).await;
    register_example(pool, "diamond").await;
    let req = new_task("demo", "diamond", json!({"value": 3}));
    let (created, _) = task::create(pool, &TemplateCache::default(), &req, "test")
        .await
        .unwrap();
    created.task_id
}

fn lines(messages: &[(LogLevel, &str)]) -> AttemptLines {
    let log = AttemptLog::new();
    for (level, m) in messages {
        log.push(*level, *m);
    }
    log.take()
}

fn row(step_id: Uuid, task_id: Uuid, attempt: u32, lines: AttemptLines) -> AttemptLogRow {
    AttemptLogRow {
        step_id,
        task_id,
        attempt,
        worker_id: format!("worker-{attempt}"),
        lines,
    }
}

#[sqlx::test(migrations = false)]
async fn a_batch_is_stored_once_and_read_back_by_attempt(pool: PgPool) {
    let task_id = diamond(&pool).await;
    let s = steps(&pool, task_id).await;
    let (start, left) = (s["start"].id, s["left"].id);
    let mut conn = pool.acquire().await.unwrap();

    // Nothing logged: no row, and no statement needed.
    let empty = [row(start, task_id, 1, AttemptLines::default())];
    assert_eq!(step_log::record(&mut conn, &empty).await.unwrap(), 0);

    // One statement for two steps; attempt 2 before attempt 1 on purpose.
    let batch = [
        row(start, task_id, 2, lines(&[(LogLevel::Info, "second try")])),
        row(
            start,
            task_id,
            1,
            lines(&[
                (LogLevel::Warn, "first try"),
                (LogLevel::Error, "nul\0here"),
            ]),
        ),
        row(left, task_id, 1, lines(&[(LogLevel::Debug, "left")])),
        row(left, task_id, 2, AttemptLines::default()),
    ];
    assert_eq!(step_log::record(&mut conn, &batch).await.unwrap(), 3);
    // A retried report writes nothing twice, and never overwrites.
    let again = [row(start, task_id, 1, lines(&[(LogLevel::Info, "other")]))];
    assert_eq!(step_log::record(&mut conn, &again).await.unwrap(), 0);

    let by_name = step_log::for_step(&pool, task_id, "start").await.unwrap();
    assert_eq!(
        by_name.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(by_name[0].worker_id, "worker-1");
    assert_eq!(by_name[0].lines[0].level, LogLevel::Warn);
    assert_eq!(by_name[0].lines[0].message, "first try");
    assert_eq!(by_name[0].lines[1].message, "nul\u{FFFD}here");
    assert_eq!(by_name[1].lines[0].message, "second try");
    let by_id = step_log::for_step(&pool, task_id, &start.to_string())
        .await
        .unwrap();
    assert_eq!(by_id, by_name);
    assert!(step_log::for_step(&pool, task_id, "right")
        .await
        .unwrap()
        .is_empty());
    assert!(step_log::for_step(&pool, Uuid::now_v7(), "start")
        .await
        .unwrap()
        .is_empty());
}

#[sqlx::test(migrations = false)]
async fn dropped_lines_are_kept_as_a_count_and_rows_go_with_the_task(pool: PgPool) {
    let task_id = diamond(&pool).await;
    let start = steps(&pool, task_id).await["start"].id;
    let log = AttemptLog::new();
    for i in 0..(tasker_model::step::log::MAX_LINES + 3) {
        log.info(format!("line {i}"));
    }
    let mut conn = pool.acquire().await.unwrap();
    step_log::record(&mut conn, &[row(start, task_id, 1, log.take())])
        .await
        .unwrap();
    // Only a count: an attempt that logged nothing kept but dropped lines is stored.
    let only_dropped = AttemptLines {
        lines: Vec::new(),
        dropped: 7,
    };
    step_log::record(&mut conn, &[row(start, task_id, 2, only_dropped)])
        .await
        .unwrap();
    let stored = step_log::for_step(&pool, task_id, "start").await.unwrap();
    assert_eq!(stored[0].lines.len(), tasker_model::step::log::MAX_LINES);
    assert_eq!((stored[0].dropped, stored[1].dropped), (3, 7));

    sqlx::query("DELETE FROM tasker.tasks WHERE id = $1")
        .bind(task_id)
        .execute(&pool)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tasker.step_logs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
