//! Handler logs per attempt, end to end in process: a Rust handler logs
//! through `ctx.log` on a failed attempt and on the retry that succeeds; each
//! attempt's lines are stored with it (`tasker_store::step_log`), levels
//! kept, and a step that logs nothing stores nothing.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use serde_json::json;
use sqlx::PgPool;

use tasker_model::state::TaskState;
use tasker_model::step::log::LogLevel;
use tasker_model::step::StepError;
use tasker_store::step_log;
use tasker_testkit::{migrated, register_inline, registry, Stack};
use tasker_worker::handler::rust::handler_fn;

const FLAKY: &str = "namespace: demo\nname: flaky_logs\nversion: 1.0.0\nsteps:
  - name: flaky
    handler: { name: test.flaky_logs }
    retry: { max_attempts: 2, backoff: none }
  - name: quiet
    handler: { name: math.compute, config: { op: square } }
    depends_on: [flaky]
";

#[sqlx::test(migrations = false)]
async fn each_attempt_keeps_its_own_lines(pool: PgPool) {
    migrated(&pool).await;
    register_inline(&pool, FLAKY).await;
    let reg = registry();
    reg.register(
        "test.flaky_logs",
        handler_fn(|ctx, _| async move {
            ctx.log.info(format!("starting attempt {}", ctx.attempt));
            if ctx.attempt == 1 {
                ctx.log.error("upstream said 503");
                return Err(StepError::retryable("upstream unavailable"));
            }
            ctx.log.debug("upstream answered");
            Ok(json!({ "value": 2 }))
        }),
    );
    let h = Stack::start(&pool, reg).await;
    let id = h.create("flaky_logs", json!({ "value": 1 })).await;
    assert_eq!(h.wait(id).await, TaskState::Complete);

    let logs = step_log::for_step(&pool, id, "flaky").await.unwrap();
    let by_attempt: Vec<(u32, Vec<(LogLevel, String)>)> = logs
        .iter()
        .map(|a| {
            let lines = a
                .lines
                .iter()
                .map(|l| (l.level, l.message.clone()))
                .collect();
            (a.attempt, lines)
        })
        .collect();
    assert_eq!(
        by_attempt,
        vec![
            (
                1,
                vec![
                    (LogLevel::Info, "starting attempt 1".to_string()),
                    (LogLevel::Error, "upstream said 503".to_string()),
                ]
            ),
            (
                2,
                vec![
                    (LogLevel::Info, "starting attempt 2".to_string()),
                    (LogLevel::Debug, "upstream answered".to_string()),
                ]
            ),
        ]
    );
    assert!(logs
        .iter()
        .all(|a| a.dropped == 0 && !a.worker_id.is_empty()));
    assert!(logs[0].lines[0].at <= logs[1].lines[0].at);
    // `math.compute` logs nothing: no row, no statement.
    assert!(step_log::for_step(&pool, id, "quiet")
        .await
        .unwrap()
        .is_empty());
    h.stop().await;
}
