//! `tasker pause|resume task|template|namespace ...` and `tasker pause list`,
//! through the admin API: paused work is not claimed, running steps finish,
//! resuming continues where it stopped (`docs/flow-control.md`).

use anyhow::bail;
use clap::Subcommand;
use comfy_table::Table;

use tasker_client::{Client, PauseTarget};

use super::remote::{explain, print_json};

/// What to pause or resume.
#[derive(Subcommand)]
pub enum Target {
    /// One task.
    Task { id: uuid::Uuid },
    /// Every task of a template (every version): `namespace/name`.
    Template { template: String },
    /// Every task of a namespace.
    Namespace { namespace: String },
}

#[derive(Subcommand)]
pub enum PauseCmd {
    /// Pause a task.
    Task {
        id: uuid::Uuid,
        /// Why (shown by `tasker pause list`).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Pause every task of a template (every version): `namespace/name`.
    Template {
        template: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Pause every task of a namespace.
    Namespace {
        namespace: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// The pauses in force.
    List {
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn template_target(s: &str) -> anyhow::Result<PauseTarget> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(PauseTarget::Template {
                namespace: ns.to_string(),
                name: name.to_string(),
            })
        }
        _ => bail!("template {s}: expected namespace/name"),
    }
}

fn target(t: Target) -> anyhow::Result<PauseTarget> {
    Ok(match t {
        Target::Task { id } => PauseTarget::Task(id),
        Target::Template { template } => template_target(&template)?,
        Target::Namespace { namespace } => PauseTarget::Namespace(namespace),
    })
}

fn describe(t: &PauseTarget) -> String {
    match t {
        PauseTarget::Task(id) => format!("task {id}"),
        PauseTarget::Template { namespace, name } => format!("template {namespace}/{name}"),
        PauseTarget::Namespace(ns) => format!("namespace {ns}"),
    }
}

pub async fn pause(c: &Client, cmd: PauseCmd) -> anyhow::Result<()> {
    let (t, reason) = match cmd {
        PauseCmd::List { namespace, json } => return list(c, namespace, json).await,
        PauseCmd::Task { id, reason } => (PauseTarget::Task(id), reason),
        PauseCmd::Template { template, reason } => (template_target(&template)?, reason),
        PauseCmd::Namespace { namespace, reason } => (PauseTarget::Namespace(namespace), reason),
    };
    let r = c
        .pause(&t, reason.as_deref())
        .await
        .map_err(|e| explain(c, e))?;
    let what = describe(&t);
    if r.changed {
        println!("{what} paused ({} queued steps held)", r.messages);
    } else {
        println!("{what} was already paused");
    }
    Ok(())
}

pub async fn resume(c: &Client, t: Target) -> anyhow::Result<()> {
    let t = target(t)?;
    let r = c.resume(&t).await.map_err(|e| explain(c, e))?;
    let what = describe(&t);
    if r.changed {
        println!("{what} resumed ({} queued steps released)", r.messages);
    } else {
        println!(
            "{what} was not paused ({} queued steps released)",
            r.messages
        );
    }
    Ok(())
}

async fn list(c: &Client, namespace: Option<String>, json: bool) -> anyhow::Result<()> {
    let page = c
        .list_pauses(namespace.as_deref())
        .await
        .map_err(|e| explain(c, e))?;
    if json {
        return print_json(&page);
    }
    if page.pauses.is_empty() {
        println!("nothing is paused");
        return Ok(());
    }
    let mut table = Table::new();
    table.set_header(["scope", "target", "since", "by", "reason"]);
    for p in &page.pauses {
        table.add_row([
            p.scope.clone(),
            p.target.clone(),
            p.paused_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            p.paused_by.clone().unwrap_or_default(),
            p.reason.clone().unwrap_or_default(),
        ]);
    }
    println!("{table}");
    Ok(())
}
