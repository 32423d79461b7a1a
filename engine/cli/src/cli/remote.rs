//! The commands that drive a running `tasker server` through its admin API
//! (`tasker_client`), and what they share: the client for `--api` /
//! `--api-key`, error explanations, output helpers. The task commands
//! `task create|get|list|cancel` and `step retry|resolve|complete` are here;
//! `task watch` is in `task_watch.rs`, `template apply|list` and `queue stats`
//! in `templates_queues.rs`, both re-exported here.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use comfy_table::Table;
use serde::Serialize;
use uuid::Uuid;

use tasker_api_types::{ActionResult, CreateTaskRequest, ListTasksParams, Task};
use tasker_client::{Client, ClientError};
use tasker_config::TaskerConfig;

/// `--api` / `--api-key` / `--api-key-file` over `[client]`.
pub struct Target {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub api_key_file: Option<std::path::PathBuf>,
}

/// The client for the configured (or overridden) API.
pub fn client(config: &TaskerConfig, target: &Target) -> anyhow::Result<Client> {
    let url = target
        .url
        .clone()
        .unwrap_or_else(|| config.client.url.clone());
    let from_file = match &target.api_key_file {
        Some(path) => Some(read_key_file(path)?),
        None => None,
    };
    let key = from_file.or_else(|| target.api_key.clone()).or_else(|| {
        config
            .client
            .api_key
            .as_ref()
            .map(|s| s.expose().to_string())
    });
    if key.is_some() {
        if let Some(host) = plain_http_beyond_loopback(&url) {
            tracing::warn!(
                "sending the API key over plain http to {host}: anyone on the path can read it; use an https URL"
            );
        }
    }
    Ok(Client::new(&url, key)?)
}

/// The first line of `path`, trimmed; an error names the file.
fn read_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read the API key file {}: {e}", path.display()))?;
    let key = text.lines().next().unwrap_or("").trim().to_string();
    if key.is_empty() {
        anyhow::bail!("the API key file {} is empty", path.display());
    }
    Ok(key)
}

/// The host of an `http://` URL whose host is not a loopback address.
fn plain_http_beyond_loopback(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| host.to_string())
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
pub(super) fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(super) fn print_action(r: &ActionResult, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    println!("{what}; task {} is now {}", r.task_id, r.task_state);
    Ok(())
}

pub(super) fn opt<T: ToString>(v: &Option<T>) -> String {
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
    /// A delayed start: `--run-at` (RFC 3339) or `--delay` (seconds).
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    pub delay_seconds: Option<u64>,
    pub json: bool,
}

pub async fn task_create(c: &Client, a: CreateArgs) -> anyhow::Result<()> {
    let context = match (&a.context, &a.context_file) {
        (Some(_), Some(_)) => bail!("give --context or --context-file, not both"),
        (Some(text), None) => tasker_model::step::parse_json_exact(text)
            .map_err(|e| anyhow!("--context cannot be sent exactly: {e}"))?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --context-file {}", path.display()))?;
            tasker_model::step::parse_json_exact(&text).map_err(|e| {
                anyhow!(
                    "--context-file {} cannot be sent exactly: {e}",
                    path.display()
                )
            })?
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
        run_at: a.run_at,
        delay_seconds: a.delay_seconds,
    };
    // The submission's span: it continues the trace in $TRACEPARENT (as
    // otel-cli and CI tools set it), if any, and the task's trace continues it.
    let inherited = std::env::var("TRACEPARENT").ok();
    let mut span = tasker_trace::Span::start(
        "tasker.client.create_task",
        tasker_trace::SpanKind::Client,
        inherited.as_deref(),
        || {
            vec![
                tasker_trace::KeyValue::new("tasker.namespace", req.namespace.clone()),
                tasker_trace::KeyValue::new("tasker.template", req.name.clone()),
            ]
        },
    );
    let created = c.create_task_in_trace(&req, Some(span.traceparent())).await;
    match &created {
        Ok(t) => span.set(tasker_trace::KeyValue::new(
            "tasker.task_id",
            t.task_id.to_string(),
        )),
        Err(e) => span.fail(e.to_string()),
    }
    span.end();
    let created = created.map_err(|e| explain(c, e))?;
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
    warn_unserved(&created.unserved);
    Ok(())
}

/// One line on stderr per step no live worker serves.
pub fn warn_unserved(unserved: &[tasker_api_types::UnservedStep]) {
    for u in unserved {
        eprintln!(
            "warning: no live worker serves step '{}' (handler '{}', pool '{}'): it will wait for one",
            u.step, u.handler, u.pool
        );
    }
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
    if let Some(at) = t.run_at {
        println!("run at  {}", at.to_rfc3339());
    }
    if let Some(schedule) = t.schedule_id {
        println!("fired by schedule {schedule}");
    }
    if let Some(trace) = t
        .traceparent
        .as_deref()
        .and_then(tasker_model::trace::Traceparent::parse)
    {
        println!("trace   {}", trace.trace_id_hex());
    }
    if d.paused {
        println!("paused  (nothing new is claimed; `tasker pause list` shows by what)");
    }
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
        let detail = match (&s.wait_until, &s.wait_signal) {
            (Some(until), Some(signal)) => {
                format!("waits for signal '{signal}' until {}", until.to_rfc3339())
            }
            (Some(until), None) => format!("sleeps until {}", until.to_rfc3339()),
            _ => s
                .result
                .as_ref()
                .or(s.last_error.as_ref())
                .map(|v| v.to_string())
                .unwrap_or_default(),
        };
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

pub(super) fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// Each step's DAG level (roots 0) from the task's edges.
pub(super) fn levels(steps: &[String], edges: &[(String, String)]) -> HashMap<String, usize> {
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_flagged_only_beyond_loopback() {
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:80/x",
            "https://api.example.com",
        ] {
            assert_eq!(plain_http_beyond_loopback(local), None, "{local}");
        }
        assert_eq!(
            plain_http_beyond_loopback("http://api.example.com:8080/v1").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            plain_http_beyond_loopback("http://10.0.0.5").as_deref(),
            Some("10.0.0.5")
        );
    }

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
