//! `tasker worker list`: the worker registry, as a table or JSON.

use comfy_table::Table;
use tasker_client::Client;

use super::remote::{explain, print_json};

/// `tasker worker list`: the worker registry.
pub async fn worker_list(c: &Client, all: bool, json: bool) -> anyhow::Result<()> {
    let list = c.workers(all).await.map_err(|e| explain(c, e))?;
    if json {
        return print_json(&list);
    }
    let mut table = Table::new();
    table.set_header([
        "id",
        "status",
        "runtime",
        "host/pid",
        "pools",
        "handlers",
        "busy",
        "done/failed",
        "heartbeat",
    ]);
    let now = chrono::Utc::now();
    for w in &list.workers {
        let mut handlers = w.handlers.join(", ");
        if w.runs_components {
            handlers.push_str(if handlers.is_empty() {
                "(WASM components)"
            } else {
                " + WASM components"
            });
        }
        table.add_row([
            w.id.clone(),
            w.status.clone(),
            format!("{} {}", w.runtime, w.runtime_version),
            format!("{}/{}", w.host, w.pid),
            w.pools.join(", "),
            handlers,
            format!("{}/{}", w.in_flight, w.concurrency),
            format!("{}/{}", w.steps_succeeded, w.steps_failed),
            format!("{}s ago", (now - w.last_heartbeat_at).num_seconds().max(0)),
        ]);
    }
    println!("{table}");
    if list.workers.is_empty() {
        println!("no {}workers", if all { "" } else { "live " });
    }
    Ok(())
}
