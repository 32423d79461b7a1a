//! `tasker signal send <task> <name> [--payload JSON]`: a signal for the step
//! of a task that waits for it (`wait_for`), through the admin API
//! (`docs/waits.md`).

use anyhow::{anyhow, Context};
use clap::Subcommand;
use serde_json::Value;
use uuid::Uuid;

use tasker_api_types::SignalResult;
use tasker_client::Client;

use super::remote::{explain, print_json};

#[derive(Subcommand)]
pub enum SignalCmd {
    /// Send a signal to a task: the step waiting for it completes, the
    /// payload its result; sent before the step waits, it is kept until then.
    Send {
        /// Task id.
        task: Uuid,
        /// Signal name, as the step's `wait_for.signal` names it.
        name: String,
        /// The payload as JSON (default null), or `@path` to read it from a file.
        #[arg(long)]
        payload: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(c: &Client, cmd: SignalCmd) -> anyhow::Result<()> {
    match cmd {
        SignalCmd::Send {
            task,
            name,
            payload,
            json,
        } => {
            let payload = match payload {
                Some(text) => parse_payload(&text)?,
                None => Value::Null,
            };
            let r = c
                .send_signal(task, &name, payload)
                .await
                .map_err(|e| explain(c, e))?;
            if json {
                return print_json(&r);
            }
            println!("{}", describe(&r));
            Ok(())
        }
    }
}

/// `--payload`: JSON text, or `@path` for a file's; read exactly (an integer
/// beyond 64 bits is refused, not rounded).
fn parse_payload(text: &str) -> anyhow::Result<Value> {
    let owned;
    let (json, from) = match text.strip_prefix('@') {
        Some(path) => {
            owned = std::fs::read_to_string(path)
                .with_context(|| format!("reading the payload file {path}"))?;
            (owned.as_str(), format!("the payload file {path}"))
        }
        None => (text, "--payload".to_string()),
    };
    tasker_model::step::parse_json_exact(json)
        .map_err(|e| anyhow!("{from} is not JSON that can be sent exactly: {e}"))
}

/// One line saying what the signal did.
fn describe(r: &SignalResult) -> String {
    if r.consumed {
        format!(
            "signal '{}' taken by step {} ({}); task {} is now {}",
            r.name, r.step, r.step_state, r.task_id, r.task_state
        )
    } else {
        format!(
            "signal '{}' buffered: step {} ({}) takes it when it begins to wait; task {} is {}",
            r.name, r.step, r.step_state, r.task_id, r.task_state
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_json_or_a_file() {
        assert_eq!(
            parse_payload(r#"{"ok": true}"#).unwrap(),
            serde_json::json!({"ok": true})
        );
        assert!(parse_payload("{not json").is_err());
        let dir = std::env::temp_dir().join(format!("tasker-signal-{}", Uuid::now_v7()));
        std::fs::write(&dir, "[1, 2]").unwrap();
        let from_file = parse_payload(&format!("@{}", dir.display())).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(from_file, serde_json::json!([1, 2]));
        let missing = parse_payload("@/nonexistent/payload.json").unwrap_err();
        assert!(
            format!("{missing:#}").contains("payload file"),
            "{missing:#}"
        );
    }

    #[test]
    fn what_a_signal_did_is_said_in_one_line() {
        let mut r = SignalResult {
            signal_id: Uuid::nil(),
            task_id: Uuid::nil(),
            name: "approved".into(),
            step: "approval".into(),
            step_id: Uuid::nil(),
            consumed: true,
            step_state: "complete".into(),
            task_state: "steps_in_process".into(),
        };
        assert!(describe(&r).starts_with("signal 'approved' taken by step approval (complete)"));
        r.consumed = false;
        r.step_state = "pending".into();
        assert!(describe(&r).contains("buffered"));
    }
}
