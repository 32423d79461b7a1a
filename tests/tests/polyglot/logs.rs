//! The polyglot test's handler logs: after the run, `tasker step logs <task>
//! <step>` (the CLI, as a process, through the API) shows the line each
//! runtime's handler logged into its attempt: Python `ctx.logger`, Ruby
//! `context.logger`, C `tasker_step_log`, the Rust WASM guest's `log` import,
//! and the native Rust example handler's `ctx.log`.

use std::time::{Duration, Instant};

use uuid::Uuid;

/// (step, runtime, text its handler logs at INFO on every attempt).
pub const LOGGED: [(&str, &str, &str); 5] = [
    ("subtotal", "Python", "hello from python"),
    ("shipping", "Ruby", "hello from ruby"),
    ("tax", "C", "hello from c"),
    ("pre_tax", "WASM (Rust guest)", "pre_tax -> "),
    ("payment", "native Rust", "charging order "),
];

/// Asserts that `tasker step logs <task> <step>` (run by `cli`) shows each
/// runtime's line, at INFO, for attempt 1. The logs are written with the
/// attempt's outcome, so they are there once the task completed; a short
/// retry covers a reader that is a little behind.
pub async fn assert_logged(cli: &dyn Fn(&[&str]) -> String, task: Uuid) {
    let task = task.to_string();
    for (step, runtime, needle) in LOGGED {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = cli(&["step", "logs", &task, step]);
            if let Some(line) = out.lines().find(|l| l.contains(needle)) {
                assert!(
                    line.starts_with("attempt 1 ") && line.contains("INFO"),
                    "the {runtime} handler's line is not an INFO line of attempt 1: {line}\n{out}"
                );
                eprintln!("polyglot log [{runtime}] {line}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "`tasker step logs {task} {step}` shows no line of the {runtime} handler \
                 containing {needle:?}:\n{out}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
