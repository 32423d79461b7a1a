//! A WASM guest's logs land in its attempt's log (`tasker.step_logs`): the
//! contract's `log` import at its level, stdout as `info` and stderr as
//! `warn` lines, whether the call returned or trapped, within the per-attempt
//! caps. Real wasmtime, the Rust example guests
//! (`scripts/build-wasm-examples.sh rust`), a real PostgreSQL.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use tasker_model::state::TaskState;
use tasker_model::step::log::{LogLevel, MAX_BYTES};
use tasker_store::step_log::{self, StoredAttemptLog};
use tasker_testkit::{migrated, register_inline, wasm_guest as guest, Stack};

/// An orchestrator, the API (no auth) and a worker with the WASM backend.
async fn start(test_pool: &PgPool) -> (Stack, PgPool) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect_with((*test_pool.connect_options()).clone())
        .await
        .expect("a pool on the test database");
    migrated(&pool).await;
    let stack = Stack::builder(&pool)
        .api()
        .wasm()
        .config(|c| c.web.auth.enabled = false)
        .wait_timeout(Duration::from_secs(60))
        .start()
        .await;
    (stack, pool)
}

async fn upload(h: &Stack, name: &str, file: &str) {
    tasker_client::Client::new(&h.base_url(), None)
        .unwrap()
        .upload_component(name, "1.0.0", guest(file))
        .await
        .unwrap_or_else(|e| panic!("upload {name}: {e}"));
}

/// Runs a one-step task of `handler` with `config` and returns its state and
/// the step's attempt logs.
async fn run_one(
    h: &Stack,
    name: &str,
    handler: &str,
    config: &str,
) -> (TaskState, Vec<StoredAttemptLog>) {
    register_inline(
        h.pool(),
        &format!(
            "namespace: demo\nname: {name}\nversion: 1.0.0\nsteps:\n  - name: only\n    \
             handler: {{ name: {handler}, config: {config} }}\n    retry: {{ max_attempts: 1 }}\n"
        ),
    )
    .await;
    let id = h.create(name, json!({"value": 3})).await;
    let state = h.wait(id).await;
    (
        state,
        step_log::for_step(h.pool(), id, "only").await.unwrap(),
    )
}

#[sqlx::test(migrations = false)]
async fn log_lines_stdout_and_stderr_land_in_the_attempt_log(pool: PgPool) {
    let (h, own_pool) = start(&pool).await;
    upload(&h, "math-rust", "math_rust.wasm").await;
    upload(&h, "hostile-rust", "hostile_rust.wasm").await;

    // The `log` import and stdout, on success.
    let (state, logs) = run_one(&h, "math", "math-rust", "{ op: square }").await;
    assert_eq!(state, TaskState::Complete);
    assert_eq!(logs.len(), 1, "{logs:#?}");
    let lines: Vec<(LogLevel, &str)> = logs[0]
        .lines
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (LogLevel::Info, "only -> 9"),
            (LogLevel::Info, "computed 9 (attempt 1)")
        ]
    );
    assert_eq!((logs[0].attempt, logs[0].dropped), (1, 0));
    // The same through the API's typed client.
    let task = sqlx::query_scalar("SELECT task_id FROM tasker.step_logs LIMIT 1")
        .fetch_one(h.pool())
        .await
        .unwrap();
    let api = tasker_client::Client::new(&h.base_url(), None)
        .unwrap()
        .step_logs(task, "only")
        .await
        .unwrap();
    assert_eq!(api.attempts.len(), 1);
    assert_eq!(api.attempts[0].lines[1].level, "info");
    assert_eq!(api.attempts[0].lines[1].message, "computed 9 (attempt 1)");

    // A trap: the panic message the guest wrote to stderr is kept.
    let (state, logs) = run_one(&h, "panics", "hostile-rust", "{ mode: panic }").await;
    assert_eq!(state, TaskState::BlockedByFailures);
    assert!(
        logs[0]
            .lines
            .iter()
            .any(|l| l.level == LogLevel::Warn && l.message.contains("panics on purpose")),
        "{logs:#?}"
    );

    // 1 MiB of stdout: the attempt keeps what fits the caps and counts the rest.
    let (state, logs) = run_one(&h, "prints", "hostile-rust", "{ mode: print }").await;
    assert_eq!(state, TaskState::Complete);
    let kept: usize = logs[0].lines.iter().map(|l| l.message.len()).sum();
    assert!(kept <= MAX_BYTES && kept > MAX_BYTES / 2, "{kept}");
    // (wasm.max_output_bytes cut stdout first; what the attempt's caps left
    // out, the note about it included, is counted.)
    let noted = logs[0]
        .lines
        .iter()
        .any(|l| l.message.contains("bytes of stdout/stderr dropped"));
    assert!(logs[0].dropped > 0 || noted, "{}", logs[0].dropped);

    h.stop().await;
    own_pool.close().await;
}
