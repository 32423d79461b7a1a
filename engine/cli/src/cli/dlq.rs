//! `tasker dlq list|show|retry|resolve|discard`: the dead-letter queue of
//! steps, through the admin API. `retry` and `resolve` are the step commands
//! applied to a dead step found by its id.

use anyhow::bail;
use clap::Subcommand;
use comfy_table::Table;
use uuid::Uuid;

use tasker_api_types::ListDlqParams;
use tasker_client::Client;

use super::remote::{explain, print_action, print_json, StepAction};

#[derive(Subcommand)]
pub enum DlqCmd {
    /// Steps that ended in error (attempts exhausted, a permanent failure, no live worker).
    List {
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// At most this many (1..=500).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One dead step: task, template, handler, attempts, last error, input.
    Show {
        step_id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Run a dead step again with fresh attempts (its blocked task resumes).
    Retry {
        step_id: Uuid,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Mark a dead step resolved by hand: its children run.
    Resolve {
        step_id: Uuid,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Give a dead step up: it leaves the queue and its task ends in error.
    Discard {
        step_id: Uuid,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(c: &Client, cmd: DlqCmd) -> anyhow::Result<()> {
    match cmd {
        DlqCmd::List {
            namespace,
            limit,
            json,
        } => list(c, namespace, limit, json).await,
        DlqCmd::Show { step_id, json } => show(c, step_id, json).await,
        DlqCmd::Retry {
            step_id,
            reason,
            json,
        } => step_action(c, step_id, StepAction::Retry, reason, json).await,
        DlqCmd::Resolve {
            step_id,
            reason,
            json,
        } => step_action(c, step_id, StepAction::Resolve, reason, json).await,
        DlqCmd::Discard {
            step_id,
            reason,
            json,
        } => {
            let r = c
                .discard_dead_step(step_id, reason)
                .await
                .map_err(|e| explain(c, e))?;
            print_action(&r, json, "step discarded")
        }
    }
}

/// A step command (`tasker step retry|resolve`) on a dead step found by its id.
async fn step_action(
    c: &Client,
    step_id: Uuid,
    action: StepAction,
    reason: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let dead = c.dead_step(step_id).await.map_err(|e| explain(c, e))?;
    super::remote::step(c, dead.task_id, &step_id.to_string(), action, reason, json).await
}

async fn list(c: &Client, namespace: Option<String>, limit: i64, json: bool) -> anyhow::Result<()> {
    if !(1..=500).contains(&limit) {
        bail!("--limit must be 1..=500, got {limit}");
    }
    let params = ListDlqParams {
        namespace,
        limit: Some(limit),
        cursor: None,
    };
    let page = c.dlq(&params).await.map_err(|e| explain(c, e))?;
    if json {
        return print_json(&page);
    }
    let mut table = Table::new();
    table.set_header([
        "step id", "task", "template", "step", "handler", "attempts", "error", "failed",
    ]);
    for s in &page.steps {
        table.add_row([
            s.step_id.to_string(),
            s.task_id.to_string(),
            format!("{}/{}/{}", s.namespace, s.template, s.template_version),
            s.step.clone(),
            format!("{} (pool {})", s.handler, s.pool),
            format!("{}/{}", s.attempts, s.max_attempts),
            error_line(s.last_error.as_ref()),
            s.failed_at.to_rfc3339(),
        ]);
    }
    println!("{table}");
    match (page.steps.len(), page.next_cursor) {
        (0, _) => println!("the dead-letter queue is empty"),
        (n, Some(_)) => println!("{n} shown; more with --limit or --json paging"),
        _ => {}
    }
    Ok(())
}

/// `kind: message`, cut to one short line.
fn error_line(e: Option<&serde_json::Value>) -> String {
    let Some(e) = e else { return String::new() };
    let kind = e["kind"].as_str().unwrap_or("?");
    let message = e["message"].as_str().unwrap_or("");
    let mut line = format!("{kind}: {message}");
    if line.chars().count() > 80 {
        line = line.chars().take(79).collect::<String>() + "…";
    }
    line
}

async fn show(c: &Client, step_id: Uuid, json: bool) -> anyhow::Result<()> {
    let s = c.dead_step(step_id).await.map_err(|e| explain(c, e))?;
    if json {
        return print_json(&s);
    }
    println!("step      {} ({})", s.step, s.step_id);
    println!("task      {} ({})", s.task_id, s.task_state);
    println!(
        "template  {}/{}/{}",
        s.namespace, s.template, s.template_version
    );
    println!("handler   {} in pool {}", s.handler, s.pool);
    println!("attempts  {} of {}", s.attempts, s.max_attempts);
    println!("failed at {}", s.failed_at.to_rfc3339());
    println!("error     {}", serde_json::to_string_pretty(&s.last_error)?);
    println!("input     {}", serde_json::to_string_pretty(&s.input)?);
    Ok(())
}
