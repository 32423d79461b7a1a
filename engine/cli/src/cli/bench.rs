//! `tasker bench`: sequential latency and throughput of real workflows, next to
//! the raw PGMQ floor measured in the same run. Build with `--release`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use sqlx::PgPool;
use tasker_config::TaskerConfig;
use tasker_model::template::Template;
use tasker_notify::watch::TaskWatcher;
use tasker_orchestrator::{self as orchestration, OrchestratorSettings};
use tasker_store::queue;
use tasker_store::task::NewTask;
use tasker_store::template::TemplateCache;
use tasker_worker::handler::rust::handler_fn;
use tasker_worker::handler::HandlerRegistry;
use tokio_util::sync::CancellationToken;

#[derive(Args)]
pub struct BenchArgs {
    /// Sequential linear 4-step tasks.
    #[arg(long, default_value_t = 200)]
    linear: usize,
    /// Diamond tasks for the throughput run.
    #[arg(long, default_value_t = 2000)]
    diamonds: usize,
    /// Worker/orchestrator batch size (also the floor's batch size).
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Database connections in the pool (at least 4). On two cores more
    /// connections only add contention: 10 beat 32 by 10-30% in throughput.
    #[arg(long, default_value_t = 10)]
    connections: u32,
    #[command(subcommand)]
    what: Option<BenchWhat>,
}

/// Benchmarks other than the default workflow run.
#[derive(clap::Subcommand)]
pub enum BenchWhat {
    /// WASM handler dispatch and loading costs next to plain wasmtime.
    Wasm(super::bench_wasm::WasmBenchArgs),
}

const LINEAR: &str = r#"
namespace: bench
name: linear4
version: 1.0.0
steps:
  - { name: a, handler: { name: bench.noop } }
  - { name: b, handler: { name: bench.noop }, depends_on: [a] }
  - { name: c, handler: { name: bench.noop }, depends_on: [b] }
  - { name: d, handler: { name: bench.noop }, depends_on: [c] }
"#;
const DIAMOND: &str = r#"
namespace: bench
name: diamond
version: 1.0.0
steps:
  - { name: start, handler: { name: bench.noop } }
  - { name: left, handler: { name: bench.noop }, depends_on: [start] }
  - { name: right, handler: { name: bench.noop }, depends_on: [start] }
  - { name: join, handler: { name: bench.noop }, depends_on: [left, right] }
"#;

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (
        pct(&v, 0.5),
        pct(&v, 0.99),
        v.first().copied().unwrap_or(f64::NAN),
        v.last().copied().unwrap_or(f64::NAN),
    )
}

pub async fn run(args: BenchArgs, config: &TaskerConfig) -> anyhow::Result<()> {
    if let Some(BenchWhat::Wasm(wasm)) = args.what {
        return super::bench_wasm::run(wasm, config).await;
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are meaningful only with --release");
    }
    let mut config = config.clone();
    if config.database.url.is_none() {
        config.database.database_name = "tasker_bench".into();
    }
    config.database.max_connections = args.connections.max(4);
    config.orchestration.result_batch_size = args.batch;
    config.orchestration.retry_sweep_interval_ms = 1000;
    // A run leaves ~30,000 dead rows; vacuum during it, as a live system would.
    config.orchestration.vacuum_interval_seconds = 5;
    let db = super::open_db(&config).await?;
    let pool = db.pool.clone();
    println!(
        "tasker bench on {} ({} cores)",
        db.display_url,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    sqlx::query("TRUNCATE tasker.tasks, tasker.task_transitions, tasker.step_transitions, tasker.step_results CASCADE")
        .execute(&pool)
        .await?;
    for text in [LINEAR, DIAMOND] {
        tasker_store::template::register(&pool, &Template::from_yaml_str(text, "<bench>")?).await?;
    }
    purge(&pool, "steps_bench").await?;
    purge(&pool, queue::RESULTS_QUEUE).await?;

    let floor_before = floor(&pool, args.batch as i32).await?;
    let creation = creation_rate(&pool, args.diamonds.min(1000)).await?;
    // Every run starts from vacuumed tables with current statistics: the
    // queues were purged (dead rows) and statistics of truncated tables say
    // "empty" (plans made from them scan whole tables as they grow).
    sqlx::raw_sql(
        "VACUUM (ANALYZE) tasker.tasks, tasker.steps, tasker.step_edges,
                 tasker.step_transitions, tasker.step_results, tasker.task_transitions,
                 pgmq.q_steps_bench, pgmq.q_orchestration_results",
    )
    .execute(&pool)
    .await?;

    let shutdown = CancellationToken::new();
    let (orch, orch_done) = orchestration::start(
        pool.clone(),
        TemplateCache::default(),
        OrchestratorSettings::from_config(&config),
        shutdown.clone(),
    )
    .await?;
    let registry = Arc::new(HandlerRegistry::new());
    registry.register("bench.noop", handler_fn(|_, _| async { Ok(json!({})) }));
    let mut ws = tasker_worker::WorkerSettings::from_config(&config, vec!["bench".into()]);
    ws.batch_size = args.batch as usize;
    ws.concurrency = (args.batch as usize * 2).max(ws.concurrency);
    let worker = tokio::spawn(tasker_worker::run(
        pool.clone(),
        registry,
        ws,
        shutdown.clone(),
    ));
    let watcher = TaskWatcher::start(&pool).await?;
    let req = |name: &str| NewTask {
        namespace: "bench".into(),
        name: name.into(),
        version: Some("1.0.0".into()),
        context: json!({}),
        priority: 0,
        idempotency_key: None,
    };

    // (a) sequential latency
    for _ in 0..5 {
        let t = orch.create_task(req("linear4")).await?;
        watcher.wait(t.task_id, Duration::from_secs(30)).await?;
    }
    let mut lat = Vec::with_capacity(args.linear);
    for _ in 0..args.linear {
        let t0 = Instant::now();
        let t = orch.create_task(req("linear4")).await?;
        watcher.wait(t.task_id, Duration::from_secs(30)).await?;
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (p50, p99, min, max) = summary(lat);
    println!(
        "\n(a) sequential: {} linear 4-step tasks, create -> complete",
        args.linear
    );
    println!("    task latency  p50 {p50:.2} ms  p99 {p99:.2} ms  (min {min:.2}, max {max:.2})");
    println!(
        "    per step      p50 {:.2} ms  p99 {:.2} ms",
        p50 / 4.0,
        p99 / 4.0
    );

    // (b) throughput
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(args.diamonds);
    let creators: Vec<_> = (0..4)
        .map(|k| {
            let orch = orch.clone();
            let n = args.diamonds / 4 + usize::from(k < args.diamonds % 4);
            let r = req("diamond");
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(orch.create_task(r.clone()).await.map(|c| c.task_id));
                }
                out
            })
        })
        .collect();
    for c in creators {
        for id in c.await? {
            ids.push(id?);
        }
    }
    let created = t0.elapsed();
    for id in &ids {
        watcher.wait(*id, Duration::from_secs(300)).await?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let steps = (ids.len() * 4) as f64;
    let complete: i64 = sqlx::query_scalar("SELECT count(*) FROM tasker.tasks t JOIN tasker.templates tp ON tp.id = t.template_id WHERE tp.name = 'diamond' AND t.state = 'complete'").fetch_one(&pool).await?;
    println!(
        "\n(b) throughput: {} diamond tasks ({} steps), 1 orchestrator + 1 worker, batch {}",
        ids.len(),
        steps,
        args.batch
    );
    println!(
        "    all created in {:.2} s, all complete in {:.2} s ({complete} complete)",
        created.as_secs_f64(),
        elapsed
    );
    println!(
        "    {:.0} steps/s, {:.0} tasks/s",
        steps / elapsed,
        ids.len() as f64 / elapsed
    );

    shutdown.cancel();
    let _ = worker.await;
    let _ = orch_done.await;

    let floor_after = floor(&pool, args.batch as i32).await?;
    println!(
        "\n(c) the floor: raw PGMQ on the same server, batch {}",
        args.batch
    );
    for (label, f) in [("before", &floor_before), ("after ", &floor_after)] {
        println!("    {label}: send->read->delete {:.0} msgs/s; 3-hop ping-pong p50 {:.2} ms p99 {:.2} ms", f.msgs_per_s, f.hop3_p50, f.hop3_p99);
    }
    println!(
        "\n(d) task creation alone (4 concurrent clients, no workers): {:.0} tasks/s ({:.0} steps/s of work)",
        creation,
        creation * 4.0
    );
    let fl = Floor {
        msgs_per_s: (floor_before.msgs_per_s + floor_after.msgs_per_s) / 2.0,
        hop3_p50: (floor_before.hop3_p50 + floor_after.hop3_p50) / 2.0,
        hop3_p99: 0.0,
    };
    println!("\nratios (ours / floor): per-step p50 latency {:.1}x of a raw hop; throughput {:.2}x of raw send->read->delete",
        (p50 / 4.0) / (fl.hop3_p50 / 3.0), (steps / elapsed) / fl.msgs_per_s);
    println!(
        "noise: floor before vs after differs by {:.0}%",
        100.0 * (floor_before.msgs_per_s - floor_after.msgs_per_s).abs() / fl.msgs_per_s
    );
    db.close().await;
    Ok(())
}

async fn purge(pool: &PgPool, q: &str) -> anyhow::Result<()> {
    sqlx::query("SELECT pgmq.purge_queue($1)")
        .bind(q)
        .execute(pool)
        .await?;
    Ok(())
}

struct Floor {
    msgs_per_s: f64,
    hop3_p50: f64,
    hop3_p99: f64,
}

/// Raw PGMQ: 8,000 messages sent, read and deleted in batches; and 200
/// sequential 3-hop relays (send, read, delete on three queues).
async fn floor(pool: &PgPool, batch: i32) -> anyhow::Result<Floor> {
    let mut conn = pool.acquire().await?;
    for q in ["floor_a", "floor_b", "floor_c"] {
        queue::ensure(&mut conn, q).await?;
        purge(pool, q).await?;
    }
    let body = json!({"step_id": uuid::Uuid::now_v7(), "task_id": uuid::Uuid::now_v7()});
    let n = 8000;
    let t0 = Instant::now();
    let bodies = vec![body.clone(); batch as usize];
    let mut sent = 0;
    while sent < n {
        queue::send_batch(&mut conn, "floor_a", &bodies).await?;
        sent += batch as usize;
    }
    let mut got = 0;
    while got < sent {
        let msgs = queue::read(&mut conn, "floor_a", 30, batch).await?;
        if msgs.is_empty() {
            break;
        }
        got += msgs.len();
        let ids: Vec<i64> = msgs.iter().map(|m| m.msg_id).collect();
        queue::delete_batch(&mut conn, "floor_a", &ids).await?;
    }
    let msgs_per_s = got as f64 / t0.elapsed().as_secs_f64();
    let mut hops = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        for q in ["floor_a", "floor_b", "floor_c"] {
            queue::send(&mut conn, q, &body).await?;
            let m = queue::read(&mut conn, q, 30, 1).await?;
            if let Some(m) = m.first() {
                queue::delete(&mut conn, q, m.msg_id).await?;
            }
        }
        hops.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (p50, p99, _, _) = summary(hops);
    Ok(Floor {
        msgs_per_s,
        hop3_p50: p50,
        hop3_p99: p99,
    })
}

/// Creates `n` diamond tasks in a namespace nobody serves, 4 clients at a time,
/// and returns tasks per second: the cost of one creation transaction.
async fn creation_rate(pool: &PgPool, n: usize) -> anyhow::Result<f64> {
    let idle = DIAMOND.replace("namespace: bench", "namespace: bench_idle");
    tasker_store::template::register(pool, &Template::from_yaml_str(&idle, "<bench>")?).await?;
    let cache = TemplateCache::default();
    let t0 = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (pool, cache) = (pool.clone(), cache.clone());
            tokio::spawn(async move {
                let req = NewTask {
                    namespace: "bench_idle".into(),
                    name: "diamond".into(),
                    version: Some("1.0.0".into()),
                    context: json!({}),
                    priority: 0,
                    idempotency_key: None,
                };
                for _ in 0..n / 4 {
                    tasker_store::task::create(&pool, &cache, &req, "bench").await?;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for c in clients {
        c.await??;
    }
    let rate = (n / 4 * 4) as f64 / t0.elapsed().as_secs_f64();
    purge(pool, "steps_bench_idle").await?;
    Ok(rate)
}
