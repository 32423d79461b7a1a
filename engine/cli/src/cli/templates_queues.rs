//! The template and queue commands against the admin API:
//! `tasker template apply|list` and `tasker queue stats`.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use comfy_table::Table;

use tasker_client::Client;
use tasker_model::template::load_paths;

use super::remote::{explain, opt, print_json};

#[derive(Subcommand)]
pub enum QueueCmd {
    /// Depth and age of every pool's step queue and of the results queue.
    Stats {
        #[arg(long)]
        json: bool,
    },
}
// ------------------------------------------------------------------ templates

pub async fn template_apply(c: &Client, paths: &[PathBuf], json: bool) -> anyhow::Result<()> {
    // Validate every file here first: errors name the file, nothing is sent
    // unless all are good.
    let templates = load_paths(paths)?;
    if templates.is_empty() {
        bail!("no template files (*.yaml, *.yml) under the given paths");
    }
    let mut out = Vec::new();
    for t in &templates {
        // JSON is YAML: the server parses it as it would the file.
        let body = serde_json::to_string(t)?;
        let r = c
            .register_template(&body)
            .await
            .map_err(|e| explain(c, e).context(format!("registering {}", t.key())))?;
        if !json {
            let levels: Vec<String> = r
                .levels
                .iter()
                .map(|l| format!("{}@{}", l.step, l.level))
                .collect();
            println!(
                "{}  {}  levels: {}",
                if r.created {
                    "registered"
                } else {
                    "unchanged "
                },
                r.key,
                levels.join(" ")
            );
        }
        super::remote::warn_unserved(&r.unserved);
        out.push(r);
    }
    if json {
        print_json(&out)?;
    }
    Ok(())
}

pub async fn template_list(c: &Client, json: bool) -> anyhow::Result<()> {
    let list = c.list_templates().await.map_err(|e| explain(c, e))?;
    if json {
        return print_json(&list);
    }
    let mut table = Table::new();
    table.set_header(["namespace", "name", "version", "registered"]);
    for t in list.templates {
        table.add_row([t.namespace, t.name, t.version, t.created_at.to_rfc3339()]);
    }
    println!("{table}");
    Ok(())
}

// ------------------------------------------------------------------ queues

pub async fn queue(c: &Client, cmd: QueueCmd) -> anyhow::Result<()> {
    let QueueCmd::Stats { json } = cmd;
    let list = c.queues().await.map_err(|e| explain(c, e))?;
    if json {
        return print_json(&list);
    }
    let mut table = Table::new();
    table.set_header([
        "queue",
        "pool",
        "depth",
        "oldest (s)",
        "newest (s)",
        "total sent",
    ]);
    for q in list.queues {
        table.add_row([
            q.queue_name,
            match (q.pool, q.namespace) {
                (Some(pool), Some(_)) => format!("{pool} (namespace)"),
                (Some(pool), None) => pool,
                (None, _) => "(results)".into(),
            },
            q.queue_length.to_string(),
            opt(&q.oldest_msg_age_sec),
            opt(&q.newest_msg_age_sec),
            q.total_messages.to_string(),
        ]);
    }
    println!("{table}");
    Ok(())
}
