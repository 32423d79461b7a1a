//! `tasker demo`: the example workflows end to end, in one process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use comfy_table::Table;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use tasker_config::TaskerConfig;
use tasker_model::template::Template;
use tasker_notify::watch::TaskWatcher;
use tasker_notify::Wakeups;
use tasker_orchestrator::{self as orchestration, OrchestratorSettings};
use tasker_store::task::NewTask;
use tasker_store::template::TemplateCache;
use tasker_worker::handler::{examples, HandlerRegistry};
use tokio_util::sync::CancellationToken;

/// The example templates, built into the binary so the demo runs anywhere.
pub const EXAMPLE_TEMPLATES: &[(&str, &str)] = &[
    (
        "linear.yaml",
        include_str!("../../../../examples/templates/linear.yaml"),
    ),
    (
        "diamond.yaml",
        include_str!("../../../../examples/templates/diamond.yaml"),
    ),
    (
        "tree.yaml",
        include_str!("../../../../examples/templates/tree.yaml"),
    ),
    (
        "mixed_dag.yaml",
        include_str!("../../../../examples/templates/mixed_dag.yaml"),
    ),
    (
        "order_fulfillment.yaml",
        include_str!("../../../../examples/templates/order_fulfillment.yaml"),
    ),
];

#[derive(Args)]
pub struct DemoArgs {
    /// Give up on a task after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// Parses and registers the example templates.
pub async fn register_examples(pool: &sqlx::PgPool) -> anyhow::Result<Vec<Template>> {
    let mut out = Vec::new();
    for (file, text) in EXAMPLE_TEMPLATES {
        let t = Template::from_yaml_str(text, file)?;
        tasker_store::template::register(pool, &t).await?;
        out.push(t);
    }
    Ok(out)
}

fn demo_tasks() -> Vec<NewTask> {
    let math = |name: &str, value: i64| NewTask {
        namespace: "demo".into(),
        name: name.into(),
        version: None,
        context: json!({ "value": value }),
        priority: 0,
        idempotency_key: None,
        traceparent: None,
    };
    vec![
        math("linear", 3),
        math("diamond", 2),
        math("tree", 2),
        math("mixed_dag", 1),
        NewTask {
            namespace: "ecommerce".into(),
            name: "order_fulfillment".into(),
            version: None,
            context: json!({
                "order_id": "a1001",
                "customer_email": "ada@example.com",
                "items": [
                    {"sku": "KB-01", "quantity": 1, "price_cents": 8900},
                    {"sku": "MS-02", "quantity": 2, "price_cents": 2450}
                ],
                "simulate_payment_failures": 1
            }),
            priority: 0,
            idempotency_key: None,
            traceparent: None,
        },
    ]
}

pub async fn run(args: DemoArgs, config: &TaskerConfig) -> anyhow::Result<()> {
    let db = super::open_db(config).await?;
    let pool = db.pool.clone();
    println!("tasker demo on {}", db.display_url);
    let templates = register_examples(&pool).await?;
    println!(
        "registered {} templates: {}",
        templates.len(),
        templates
            .iter()
            .map(|t| t.key())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let shutdown = CancellationToken::new();
    let wakeups = Wakeups::new(&pool);
    let (orch, orch_done) = orchestration::start(
        pool.clone(),
        wakeups.clone(),
        TemplateCache::default(),
        OrchestratorSettings::from_config(config),
        shutdown.clone(),
    )
    .await?;
    let registry = Arc::new(HandlerRegistry::new());
    examples::register(&registry);
    let settings =
        tasker_worker::WorkerSettings::from_config(config, vec!["demo".into(), "ecommerce".into()]);
    let worker = tokio::spawn(tasker_worker::run(
        pool.clone(),
        wakeups.clone(),
        registry,
        settings,
        shutdown.clone(),
    ));
    let watcher = TaskWatcher::start(&wakeups).await?;

    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>34} [{bar:20}] {pos}/{len} steps  {msg}")?
        .progress_chars("=> ");
    let mut running = Vec::new();
    for req in demo_tasks() {
        let started = Instant::now();
        let created = orch.create_task(req.clone()).await?;
        let steps = templates
            .iter()
            .find(|t| t.namespace == req.namespace && t.name == req.name)
            .map(|t| t.steps.len())
            .unwrap_or(0);
        let bar = bars.add(ProgressBar::new(steps as u64));
        bar.set_style(style.clone());
        bar.set_prefix(format!("{}/{}", req.namespace, req.name));
        running.push((req, created.task_id, started, bar));
    }
    let mut results = Vec::new();
    for (req, task_id, started, bar) in running {
        let (pool2, bar2) = (pool.clone(), bar.clone());
        let progress = tokio::spawn(async move {
            loop {
                if let Ok(d) = tasker_store::task::detail(&pool2, task_id).await {
                    let done = d.steps.iter().filter(|s| s.state == "complete").count();
                    let retrying = d
                        .steps
                        .iter()
                        .filter(|s| s.state == "waiting_for_retry")
                        .count();
                    bar2.set_position(done as u64);
                    bar2.set_message(if retrying > 0 {
                        format!("{} (retrying {retrying})", d.task.state)
                    } else {
                        d.task.state.clone()
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let state = watcher
            .wait(task_id, Duration::from_secs(args.timeout))
            .await;
        progress.abort();
        let elapsed = started.elapsed();
        let detail = tasker_store::task::detail(&pool, task_id).await?;
        let done = detail
            .steps
            .iter()
            .filter(|s| s.state == "complete")
            .count();
        bar.set_position(done as u64);
        bar.finish_with_message(format!(
            "{} in {:.1} ms",
            detail.task.state,
            elapsed.as_secs_f64() * 1e3
        ));
        results.push((req, detail, elapsed, state.is_ok()));
    }
    shutdown.cancel();
    let _ = worker.await;
    let _ = orch_done.await;

    let mut table = Table::new();
    table.set_header([
        "task",
        "state",
        "time",
        "steps",
        "attempts",
        "result (leaf steps)",
    ]);
    let mut all_ok = true;
    for (req, d, elapsed, ok) in &results {
        all_ok &= *ok && d.task.state == "complete";
        let parents: std::collections::HashSet<&str> =
            d.edges.iter().map(|(p, _)| p.as_str()).collect();
        let leaves: Vec<String> = d
            .steps
            .iter()
            .filter(|s| !parents.contains(s.name.as_str()))
            .map(|s| format!("{}={}", s.name, s.result.clone().unwrap_or_default()))
            .collect();
        let attempts: i32 = d.steps.iter().map(|s| s.attempts).sum();
        table.add_row([
            format!("{}/{}", req.namespace, req.name),
            d.task.state.clone(),
            format!("{:.1} ms", elapsed.as_secs_f64() * 1e3),
            d.steps.len().to_string(),
            attempts.to_string(),
            leaves.join("\n"),
        ]);
    }
    println!("{table}");
    db.close().await;
    if !all_ok {
        anyhow::bail!("not every demo task completed");
    }
    println!("all {} demo tasks complete", results.len());
    Ok(())
}
