//! The commands that drive a running `tasker server` through its admin API
//! (`tasker_client`): `task create|get|list|cancel|watch`,
//! `step retry|resolve|complete`, `template apply|list`, `queue stats`.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use comfy_table::Table;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use uuid::Uuid;

use tasker_api_types::{ActionResult, CreateTaskRequest, ListTasksParams, Task};
use tasker_client::{Client, ClientError, TaskEvent};
use tasker_config::TaskerConfig;
use tasker_model::template::load_paths;

/// `--api` / `--api-key` over `[client]`.
pub struct Target {
    pub url: Option<String>,
    pub api_key: Option<String>,
}

/// The client for the configured (or overridden) API.
pub fn client(config: &TaskerConfig, target: &Target) -> anyhow::Result<Client> {
    let url = target
        .url
        .clone()
        .unwrap_or_else(|| config.client.url.clone());
    let key = target.api_key.clone().or_else(|| {
        config
            .client
            .api_key
            .as_ref()
            .map(|s| s.expose().to_string())
    });
    Ok(Client::new(&url, key)?)
}

/// A client error as a message that says what to do about it.
pub fn explain(client: &Client, e: ClientError) -> anyhow::Error {
    let url = client.base_url();
    match e {
        e if e.is_connect() => anyhow!(
            "cannot reach the tasker API at {url}: is `tasker server` running? (set --api or TASKER_CLIENT__URL if it listens elsewhere)"
        ),
        ClientError::Api {
            status, message, ..
        } if status.as_u16() == 401 => {
            if client.has_api_key() {
                anyhow!("the API at {url} rejected the API key given by --api-key / TASKER_CLIENT__API_KEY / client.api_key: {message}")
            } else {
                anyhow!("the API at {url} needs an API key: pass --api-key or set TASKER_CLIENT__API_KEY (create one with `tasker apikey create <name> --permissions ...`)")
            }
        }
        ClientError::Api {
            status,
            message,
            details,
            ..
        } if status.as_u16() == 403 => {
            let needed = details
                .as_ref()
                .and_then(|d| d["required"].as_str())
                .map(|p| format!("; use a key that has it (`tasker apikey create <name> --permissions {p}`)"))
                .unwrap_or_default();
            anyhow!("forbidden: {message}{needed}")
        }
        ClientError::Api {
            status,
            error,
            message,
            details,
        } => {
            let details = details.map(|d| format!("\n  details: {d}")).unwrap_or_default();
            anyhow!("{message} ({} {error}){details}", status.as_u16())
        }
        other => anyhow!(other),
    }
}

#[derive(Subcommand)]
pub enum QueueCmd {
    /// Depth and age of every namespace queue and of the results queue.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn print_action(r: &ActionResult, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    println!("{what}; task {} is now {}", r.task_id, r.task_state);
    Ok(())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

// ------------------------------------------------------------------ tasks

pub struct CreateArgs {
    pub namespace: String,
    pub name: String,
    pub version: Option<String>,
    pub context: Option<String>,
    pub context_file: Option<PathBuf>,
    pub idempotency_key: Option<String>,
    pub priority: i32,
    pub json: bool,
}

pub async fn task_create(c: &Client, a: CreateArgs) -> anyhow::Result<()> {
    let context = match (&a.context, &a.context_file) {
        (Some(_), Some(_)) => bail!("give --context or --context-file, not both"),
        (Some(text), None) => {
            serde_json::from_str(text).map_err(|e| anyhow!("--context is not valid JSON: {e}"))?
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --context-file {}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| anyhow!("--context-file {} is not valid JSON: {e}", path.display()))?
        }
        (None, None) => serde_json::json!({}),
    };
    let req = CreateTaskRequest {
        namespace: a.namespace,
        name: a.name,
        version: a.version,
        context,
        priority: a.priority,
        idempotency_key: a.idempotency_key,
    };
    let created = c.create_task(&req).await.map_err(|e| explain(c, e))?;
    if a.json {
        return print_json(&created);
    }
    println!(
        "{}{}",
        created.task_id,
        if created.created {
            ""
        } else {
            " (existing task for this idempotency key)"
        }
    );
    Ok(())
}

pub async fn task_get(c: &Client, id: Uuid, json: bool) -> anyhow::Result<()> {
    let d = c.get_task(id).await.map_err(|e| explain(c, e))?;
    if json {
        return print_json(&d);
    }
    let t = &d.task;
    println!(
        "task {}  {}/{}/{}  {}",
        t.id, t.namespace, t.template_name, t.template_version, t.state
    );
    println!(
        "created {}{}",
        t.created_at.to_rfc3339(),
        t.completed_at
            .map(|c| format!(
                "  finished {} ({:.3}s)",
                c.to_rfc3339(),
                secs(c - t.created_at)
            ))
            .unwrap_or_default()
    );
    let levels = levels(
        &d.steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        &d.edges,
    );
    let mut steps: Vec<_> = d.steps.iter().collect();
    steps.sort_by_key(|s| (levels.get(&s.name).copied().unwrap_or(0), s.name.clone()));
    let mut table = Table::new();
    table.set_header([
        "level",
        "step",
        "handler",
        "state",
        "attempts",
        "took",
        "result / error",
    ]);
    for s in steps {
        let took = match (s.started_at, s.completed_at) {
            (Some(a), Some(b)) => format!("{:.3}s", secs(b - a)),
            _ => String::new(),
        };
        let detail = s
            .result
            .as_ref()
            .or(s.last_error.as_ref())
            .map(|v| v.to_string())
            .unwrap_or_default();
        table.add_row([
            levels.get(&s.name).copied().unwrap_or(0).to_string(),
            s.name.clone(),
            s.handler_name.clone(),
            s.state.clone(),
            format!("{}/{}", s.attempts, s.max_attempts),
            took,
            detail,
        ]);
    }
    println!("{table}");
    Ok(())
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// Each step's DAG level (roots 0) from the task's edges.
fn levels(steps: &[String], edges: &[(String, String)]) -> HashMap<String, usize> {
    let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (p, c) in edges {
        parents.entry(c.as_str()).or_default().push(p.as_str());
    }
    fn level<'a>(
        s: &'a str,
        parents: &HashMap<&'a str, Vec<&'a str>>,
        memo: &mut HashMap<String, usize>,
        depth: usize,
    ) -> usize {
        if let Some(l) = memo.get(s) {
            return *l;
        }
        // A DAG cannot be deeper than its edge count; guard against a cycle anyway.
        let l = if depth > parents.len() + 1 {
            0
        } else {
            parents
                .get(s)
                .map(|ps| {
                    ps.iter()
                        .map(|p| level(p, parents, memo, depth + 1) + 1)
                        .max()
                        .unwrap_or(0)
                })
                .unwrap_or(0)
        };
        memo.insert(s.to_string(), l);
        l
    }
    let mut memo = HashMap::new();
    for s in steps {
        level(s, &parents, &mut memo, 0);
    }
    memo
}

pub struct ListArgs {
    pub namespace: Option<String>,
    pub template: Option<String>,
    pub state: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<Uuid>,
    pub all: bool,
    pub json: bool,
}

pub async fn task_list(c: &Client, a: ListArgs) -> anyhow::Result<()> {
    let filter = ListTasksParams {
        namespace: a.namespace,
        state: a.state,
        template: a.template,
        limit: a.limit,
        ..ListTasksParams::default()
    };
    let mut tasks: Vec<Task> = Vec::new();
    let mut cursor = a.cursor;
    let next = loop {
        let page = c
            .list_tasks(&filter, cursor)
            .await
            .map_err(|e| explain(c, e))?;
        tasks.extend(page.tasks);
        match page.next_cursor {
            Some(next) if a.all => cursor = Some(next),
            other => break other,
        }
    };
    if a.json {
        return print_json(&serde_json::json!({ "tasks": tasks, "next_cursor": next }));
    }
    let mut table = Table::new();
    table.set_header(["id", "template", "state", "priority", "created", "finished"]);
    for t in &tasks {
        table.add_row([
            t.id.to_string(),
            format!("{}/{}/{}", t.namespace, t.template_name, t.template_version),
            t.state.clone(),
            t.priority.to_string(),
            t.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            opt(&t.completed_at.map(|d| d.format("%H:%M:%S%.3f").to_string())),
        ]);
    }
    println!("{table}");
    if let Some(n) = next {
        println!("more: --cursor {n}  (or --all)");
    }
    Ok(())
}

pub async fn task_cancel(
    c: &Client,
    id: Uuid,
    reason: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let r = c.cancel_task(id, reason).await.map_err(|e| explain(c, e))?;
    print_action(&r, json, "cancelled")
}

/// A finished task's state is a failure for the exit code.
fn failed(state: &str) -> bool {
    matches!(state, "error" | "blocked_by_failures")
}

fn step_line(name: &str, level: usize, state: &str, width: usize) -> String {
    format!("L{level}  {name:<width$}  {state}")
}

/// Follows a task's event stream: one line per step, until the task ends.
pub async fn task_watch(c: &Client, id: Uuid, json: bool) -> anyhow::Result<()> {
    // Subscribe first, then read the steps: no change falls between the two.
    let mut events = c.task_events(id).await.map_err(|e| explain(c, e))?;
    let detail = c.get_task(id).await.map_err(|e| explain(c, e))?;
    let mut last_state = detail.task.state.clone();
    let live = std::io::stderr().is_terminal();
    if json || !live {
        // One line per event: JSON, or plain text when there is no terminal to redraw.
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| explain(c, e))?;
            if let TaskEvent::State(s) = &ev {
                last_state = s.state.clone();
            }
            if json {
                println!("{}", serde_json::to_string(&ev)?);
                continue;
            }
            match ev {
                TaskEvent::State(s) => println!("task  {}", s.state),
                TaskEvent::Step(s) => println!("step  {}  {}", s.step, s.state),
                TaskEvent::Error(m) => bail!("the event stream of task {id} failed: {m}"),
            }
        }
    } else {
        let names: Vec<String> = detail.steps.iter().map(|s| s.name.clone()).collect();
        let levels = levels(&names, &detail.edges);
        let width = names.iter().map(String::len).max().unwrap_or(0);
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{spinner} {msg}").expect("valid template");
        let header = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
        let title = format!(
            "task {id}  {}/{}/{}",
            detail.task.namespace, detail.task.template_name, detail.task.template_version
        );
        header.set_message(format!("{title}  {last_state}"));
        header.enable_steady_tick(Duration::from_millis(120));
        let mut steps: Vec<_> = detail.steps.iter().collect();
        steps.sort_by_key(|s| (levels.get(&s.name).copied().unwrap_or(0), s.name.clone()));
        let mut bars: BTreeMap<String, (ProgressBar, usize)> = BTreeMap::new();
        for s in steps {
            let level = levels.get(&s.name).copied().unwrap_or(0);
            let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
            bar.set_message(step_line(&s.name, level, &s.state, width));
            bars.insert(s.name.clone(), (bar, level));
        }
        while let Some(ev) = events.next().await {
            match ev.map_err(|e| explain(c, e))? {
                TaskEvent::State(s) => {
                    last_state = s.state;
                    header.set_message(format!("{title}  {last_state}"));
                }
                TaskEvent::Step(s) => {
                    if let Some((bar, level)) = bars.get(&s.step) {
                        let attempt = s
                            .attempt
                            .filter(|a| *a > 1)
                            .map(|a| format!(" (attempt {a})"))
                            .unwrap_or_default();
                        bar.set_message(format!(
                            "{}{attempt}",
                            step_line(&s.step, *level, &s.state, width)
                        ));
                        if matches!(
                            s.state.as_str(),
                            "complete" | "error" | "cancelled" | "resolved_manually"
                        ) {
                            bar.tick();
                        }
                    }
                }
                TaskEvent::Error(m) => {
                    header.abandon_with_message(format!("{title}  stream error: {m}"));
                    bail!("the event stream of task {id} failed: {m}");
                }
            }
        }
        for (bar, _) in bars.values() {
            bar.finish();
        }
        header.finish_with_message(format!("{title}  {last_state}"));
    }
    if !json && !live {
        let t = c.get_task(id).await.map_err(|e| explain(c, e))?.task;
        let took = t
            .completed_at
            .map(|e| format!(" in {:.3}s", secs(e - t.created_at)))
            .unwrap_or_default();
        println!("task {id} {}{took}", t.state);
    }
    if failed(&last_state) {
        bail!("task {id} ended {last_state}; see `tasker task get {id}`");
    }
    Ok(())
}

// ------------------------------------------------------------------ steps

pub enum StepAction {
    Retry,
    Resolve,
    Complete(serde_json::Value),
}

pub async fn step(
    c: &Client,
    task: Uuid,
    step: &str,
    action: StepAction,
    reason: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let (r, what) = match action {
        StepAction::Retry => (c.retry_step(task, step, reason).await, "retried"),
        StepAction::Resolve => (c.resolve_step(task, step, reason).await, "resolved"),
        StepAction::Complete(result) => (
            c.complete_step(task, step, result, reason).await,
            "completed",
        ),
    };
    let r = r.map_err(|e| explain(c, e))?;
    print_action(&r, json, &format!("step {step} {what}"))
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
        "namespace",
        "depth",
        "oldest (s)",
        "newest (s)",
        "total sent",
    ]);
    for q in list.queues {
        table.add_row([
            q.queue_name,
            q.namespace.unwrap_or_else(|| "(results)".into()),
            q.queue_length.to_string(),
            opt(&q.oldest_msg_age_sec),
            opt(&q.newest_msg_age_sec),
            q.total_messages.to_string(),
        ]);
    }
    println!("{table}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diamond_levels() {
        let steps: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let e = |p: &str, c: &str| (p.to_string(), c.to_string());
        let l = levels(
            &steps,
            &[e("a", "b"), e("a", "c"), e("b", "d"), e("c", "d")],
        );
        assert_eq!((l["a"], l["b"], l["c"], l["d"]), (0, 1, 1, 2));
    }
}
