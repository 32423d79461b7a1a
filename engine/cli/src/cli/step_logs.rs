//! `tasker step logs <task> <step> [--attempt N] [--json]`: what a step's
//! handler logged, attempt by attempt, through the admin API
//! (`GET /v1/tasks/{id}/steps/{step}/logs`, `docs/observability.md`).

use uuid::Uuid;

use tasker_api_types::StepLogs;
use tasker_client::Client;

use super::remote::{explain, print_json};

/// Prints a step's handler logs: `--json` the API's body (narrowed to
/// `--attempt` when given), else a header per attempt and one line per log
/// line.
pub async fn run(
    c: &Client,
    task: Uuid,
    step: &str,
    attempt: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    let mut logs = c.step_logs(task, step).await.map_err(|e| explain(c, e))?;
    if let Some(n) = attempt {
        logs.attempts.retain(|a| a.attempt == n);
    }
    if json {
        return print_json(&logs);
    }
    print!("{}", render(&logs, attempt));
    Ok(())
}

/// The text form: `attempt 2  12:00:01.123  INFO  message` per line, under a
/// header naming the attempt's worker; a clear sentence when nothing was
/// logged.
pub fn render(logs: &StepLogs, attempt: Option<u32>) -> String {
    if logs.attempts.is_empty() {
        let which = attempt
            .map(|n| format!("attempt {n} of "))
            .unwrap_or_default();
        return format!(
            "{which}step '{}' of task {} logged nothing (or has not run yet)\n",
            logs.step, logs.task_id
        );
    }
    let mut out = String::new();
    for a in &logs.attempts {
        out.push_str(&format!(
            "== attempt {} on worker {} ({} line{}{})\n",
            a.attempt,
            a.worker_id,
            a.lines.len(),
            if a.lines.len() == 1 { "" } else { "s" },
            match a.dropped {
                0 => String::new(),
                n => format!(", {n} dropped by the caps"),
            }
        ));
        for l in &a.lines {
            out.push_str(&format!(
                "attempt {}  {}  {:<5}  {}\n",
                a.attempt,
                l.at.format("%H:%M:%S%.3f"),
                l.level.to_uppercase(),
                l.message
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use tasker_api_types::{AttemptLogBody, LogLineBody};

    #[test]
    fn one_line_per_log_line_under_a_header_per_attempt() {
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 1).unwrap()
            + chrono::Duration::milliseconds(123);
        let mut logs = StepLogs {
            task_id: Uuid::nil(),
            step: "charge".into(),
            attempts: vec![AttemptLogBody {
                attempt: 2,
                worker_id: "w-1".into(),
                created_at: at,
                lines: vec![LogLineBody {
                    at,
                    level: "info".into(),
                    message: "charged".into(),
                }],
                dropped: 3,
            }],
        };
        assert_eq!(
            render(&logs, None),
            "== attempt 2 on worker w-1 (1 line, 3 dropped by the caps)\n\
             attempt 2  12:00:01.123  INFO   charged\n"
        );
        logs.attempts.clear();
        assert_eq!(
            render(&logs, Some(4)),
            format!(
                "attempt 4 of step 'charge' of task {} logged nothing (or has not run yet)\n",
                Uuid::nil()
            )
        );
    }
}
