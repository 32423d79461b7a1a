//! `tasker bench`: sequential latency and throughput of real workflows, next to
//! the raw PGMQ floor measured in the same run. Build with `--release`.
//!
//! In one process, in the database [`crate::database`] provides: the floor
//! (raw PGMQ send -> read -> delete, and 3-hop ping-pong), task creation on its
//! own, then an orchestrator and a worker with a no-op Rust handler: (a)
//! sequential linear 4-step tasks, create -> complete; (b) a throughput run
//! of diamond tasks; and the floor again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use tasker_config::TaskerConfig;
use tasker_model::template::Template;
use tasker_notify::watch::TaskWatcher;
use tasker_notify::Wakeups;
use tasker_orchestrator::{self as orchestration, OrchestratorSettings};
use tasker_store::queue;
use tasker_store::task::NewTask;
use tasker_store::template::TemplateCache;
use tasker_worker::handler::rust::handler_fn;
use tasker_worker::handler::HandlerRegistry;

use crate::database::{self, BenchDb, Claims, Target};
use crate::stats::summary;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sequential linear 4-step tasks.
    pub linear: usize,
    /// Diamond tasks for the throughput run (at most 1,000 also for creation
    /// alone; [`batched_creations`] for creation in batches).
    pub diamonds: usize,
    /// Worker/orchestrator batch size (also the floor's batch size).
    pub batch: u32,
    /// Database connections in the pool (at least 4).
    pub connections: u32,
    /// Messages of the floor's send -> read -> delete run.
    pub floor_messages: usize,
    /// Sequential relays of the floor's 3-hop ping-pong.
    pub floor_hops: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            linear: 200,
            diamonds: 2000,
            batch: 32,
            connections: 10,
            floor_messages: 8000,
            floor_hops: 200,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The database it ran in, and whether it was a scratch one (now dropped).
    pub database: String,
    pub scratch: bool,
    /// Linear task latency, create -> complete, in ms.
    pub linear_p50_ms: f64,
    pub linear_p99_ms: f64,
    /// Diamond steps per second.
    pub steps_per_s: f64,
    /// Diamond tasks complete at the end of the throughput run.
    pub diamonds_complete: i64,
    /// Tasks per second, creation alone, one task per transaction.
    pub creation_per_s: f64,
    /// Tasks per second, creation alone, [`CREATION_BATCH`] tasks per transaction.
    pub creation_batched_per_s: f64,
}

const NAMESPACE: &str = "bench";
const IDLE_NAMESPACE: &str = "bench_idle";
const FLOOR_QUEUES: [&str; 3] = ["floor_a", "floor_b", "floor_c"];

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

/// The queues the run writes to, checked in a named database before it runs.
pub fn claims() -> Claims {
    let mut queues: Vec<String> = FLOOR_QUEUES.iter().map(|q| q.to_string()).collect();
    for ns in [NAMESPACE, IDLE_NAMESPACE] {
        queues.push(queue::step_queue(ns).expect("a valid namespace"));
    }
    queues.push(queue::RESULTS_QUEUE.to_string());
    Claims {
        queues,
        components: Vec::new(),
    }
}

/// Runs the benchmark in `target` (see [`crate::database`]) with `config`'s
/// database server and orchestration settings, printing as it goes.
pub async fn run(
    options: &Options,
    config: &TaskerConfig,
    target: &Target,
) -> anyhow::Result<Report> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are meaningful only with --release");
    }
    let mut config = config.clone();
    config.database.max_connections = options.connections.max(4);
    config.orchestration.result_batch_size = options.batch;
    config.orchestration.retry_sweep_interval_ms = 1000;
    // A run leaves ~30,000 dead rows; vacuum during it, as a live system would.
    config.orchestration.vacuum_interval_seconds = 5;
    // No schedules exist in a bench database: no tick loop competing for
    // the bench's few connections.
    config.orchestration.schedule_tick_interval_ms = 0;
    let (options, bench_config) = (options.clone(), config.clone());
    database::run_in(&config, target, &claims(), move |db| {
        measure(options, bench_config, db)
    })
    .await
}

async fn measure(options: Options, config: TaskerConfig, db: BenchDb) -> anyhow::Result<Report> {
    let pool = db.pool.clone();
    println!(
        "tasker bench on {} ({}; {} cores)",
        db.display_url,
        if db.scratch {
            "a scratch database, dropped afterwards"
        } else {
            "the database named with --database-url"
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    for text in [LINEAR, DIAMOND] {
        tasker_store::template::register(&pool, &Template::from_yaml_str(text, "<bench>")?).await?;
    }

    let batch = options.batch.max(1) as i32;
    let floor_before = floor(&pool, batch, &options).await?;
    let creation = creation_rate(&pool, options.diamonds.min(1000), 1).await?;
    let creation_batched =
        creation_rate(&pool, batched_creations(&options), CREATION_BATCH).await?;
    // Every run starts from vacuumed tables with current statistics (the
    // tables' statistics still say "empty": plans made from them scan whole
    // tables as they grow).
    let step_queue = queue::table(&queue::step_queue(NAMESPACE)?)?;
    let results_queue = queue::table(queue::RESULTS_QUEUE)?;
    sqlx::raw_sql(&format!(
        "VACUUM (ANALYZE) tasker.tasks, tasker.steps, tasker.step_edges,
                 tasker.step_transitions, tasker.step_results, tasker.task_transitions,
                 {step_queue}, {results_queue}"
    ))
    .execute(&pool)
    .await?;

    let shutdown = db.interrupted.child_token();
    // One Wakeups for the orchestrator, the worker and the watcher, as in
    // `tasker server` with a worker.
    let wakeups = Wakeups::new(&pool);
    let (orch, orch_done) = orchestration::start(
        pool.clone(),
        wakeups.clone(),
        TemplateCache::default(),
        OrchestratorSettings::from_config(&config),
        shutdown.clone(),
    )
    .await?;
    let registry = Arc::new(HandlerRegistry::new());
    registry.register("bench.noop", handler_fn(|_, _| async { Ok(json!({})) }));
    let mut ws = tasker_worker::WorkerSettings::from_config(&config, vec![NAMESPACE.into()]);
    ws.batch_size = options.batch as usize;
    ws.concurrency = (options.batch as usize * 2).max(ws.concurrency);
    let worker = tokio::spawn(tasker_worker::run(
        pool.clone(),
        wakeups.clone(),
        registry,
        ws,
        shutdown.clone(),
    ));
    let watcher = TaskWatcher::start(&wakeups).await?;
    let req = |name: &str| NewTask {
        namespace: NAMESPACE.into(),
        name: name.into(),
        version: Some("1.0.0".into()),
        context: json!({}),
        priority: 0,
        idempotency_key: None,
        traceparent: None,
    };

    // (a) sequential latency
    for _ in 0..5 {
        let t = orch.create_task(req("linear4")).await?;
        watcher.wait(t.task_id, Duration::from_secs(30)).await?;
    }
    let mut lat = Vec::with_capacity(options.linear);
    for _ in 0..options.linear {
        let t0 = Instant::now();
        let t = orch.create_task(req("linear4")).await?;
        watcher.wait(t.task_id, Duration::from_secs(30)).await?;
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (p50, p99, min, max) = summary(lat);
    println!(
        "\n(a) sequential: {} linear 4-step tasks, create -> complete",
        options.linear
    );
    println!("    task latency  p50 {p50:.2} ms  p99 {p99:.2} ms  (min {min:.2}, max {max:.2})");
    println!(
        "    per step      p50 {:.2} ms  p99 {:.2} ms",
        p50 / 4.0,
        p99 / 4.0
    );

    // (b) throughput
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(options.diamonds);
    let creators: Vec<_> = (0..4)
        .map(|k| {
            let orch = orch.clone();
            let n = options.diamonds / 4 + usize::from(k < options.diamonds % 4);
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
    let complete: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.tasks WHERE id = ANY($1) AND state = 'complete'",
    )
    .bind(&ids)
    .fetch_one(&pool)
    .await?;
    println!(
        "\n(b) throughput: {} diamond tasks ({} steps), 1 orchestrator + 1 worker, batch {}",
        ids.len(),
        steps,
        options.batch
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

    let floor_after = floor(&pool, batch, &options).await?;
    report_floor(
        &floor_before,
        &floor_after,
        options.batch,
        p50,
        steps / elapsed,
    );
    println!(
        "\n(d) task creation alone (4 concurrent clients, no workers): {:.0} tasks/s ({:.0} steps/s of work)",
        creation,
        creation * 4.0
    );
    println!(
        "    in batches of {CREATION_BATCH} (one transaction each): {creation_batched:.0} tasks/s ({:.0} steps/s of work)",
        creation_batched * 4.0
    );
    Ok(Report {
        database: db.name,
        scratch: db.scratch,
        linear_p50_ms: p50,
        linear_p99_ms: p99,
        steps_per_s: steps / elapsed,
        diamonds_complete: complete,
        creation_per_s: creation,
        creation_batched_per_s: creation_batched,
    })
}

/// The raw PGMQ floor of a run.
pub(crate) struct Floor {
    pub(crate) msgs_per_s: f64,
    pub(crate) hop3_p50: f64,
    pub(crate) hop3_p99: f64,
}

/// Raw PGMQ: `floor_messages` sent, read and deleted in batches; and
/// `floor_hops` sequential 3-hop relays (send, read, delete on three queues).
/// Every message sent is read and deleted again, so the queues end empty.
pub(crate) async fn floor(pool: &PgPool, batch: i32, options: &Options) -> anyhow::Result<Floor> {
    let mut conn = pool.acquire().await?;
    for q in FLOOR_QUEUES {
        queue::ensure(&mut conn, q).await?;
    }
    let [qa, ..] = FLOOR_QUEUES;
    let body = json!({"step_id": uuid::Uuid::now_v7(), "task_id": uuid::Uuid::now_v7()});
    let t0 = Instant::now();
    let bodies = vec![body.clone(); batch as usize];
    let mut sent = 0;
    while sent < options.floor_messages {
        queue::send_batch(&mut conn, qa, &bodies).await?;
        sent += batch as usize;
    }
    let mut got = 0;
    while got < sent {
        let msgs = queue::read(&mut conn, qa, 30, batch).await?;
        if msgs.is_empty() {
            break;
        }
        got += msgs.len();
        let ids: Vec<i64> = msgs.iter().map(|m| m.msg_id).collect();
        queue::delete_batch(&mut conn, qa, &ids).await?;
    }
    let msgs_per_s = got as f64 / t0.elapsed().as_secs_f64();
    let mut hops = Vec::with_capacity(options.floor_hops);
    for _ in 0..options.floor_hops.max(1) {
        let t = Instant::now();
        for q in FLOOR_QUEUES {
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

/// Tasks per request of the batched creation runs (`POST /v1/tasks/batch`,
/// `tasker_store::task::create_batch`).
pub const CREATION_BATCH: usize = 100;

/// How many tasks the batched creation run creates (and leaves pending):
/// twice the throughput run's, in whole batches, at least one batch per client.
pub fn batched_creations(options: &Options) -> usize {
    (options.diamonds * 2).max(4 * CREATION_BATCH) / (4 * CREATION_BATCH) * (4 * CREATION_BATCH)
}

/// Creates `n` diamond tasks in a namespace nobody serves, 4 clients at a
/// time, `batch` tasks per transaction (1: `tasker_store::task::create`, one
/// commit each; more: `create_batch`), and returns tasks per second. The
/// tasks stay pending (and their messages queued) until the database goes.
async fn creation_rate(pool: &PgPool, n: usize, batch: usize) -> anyhow::Result<f64> {
    let idle = DIAMOND.replace("namespace: bench", &format!("namespace: {IDLE_NAMESPACE}"));
    tasker_store::template::register(pool, &Template::from_yaml_str(&idle, "<bench>")?).await?;
    let cache = TemplateCache::default();
    let per_client = n / 4 / batch * batch;
    let t0 = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (pool, cache) = (pool.clone(), cache.clone());
            tokio::spawn(async move {
                let req = NewTask {
                    namespace: IDLE_NAMESPACE.into(),
                    name: "diamond".into(),
                    version: Some("1.0.0".into()),
                    context: json!({}),
                    priority: 0,
                    idempotency_key: None,
                    traceparent: None,
                };
                // Nobody reads the idle namespace: nothing to announce.
                if batch == 1 {
                    for _ in 0..per_client {
                        let (_created, _unread) =
                            tasker_store::task::create(&pool, &cache, &req, "bench").await?;
                    }
                } else {
                    let tasks = vec![(req, Default::default()); batch];
                    for _ in 0..per_client / batch {
                        let (_created, _unread) =
                            tasker_store::task::create_batch(&pool, &cache, &tasks, "bench")
                                .await?;
                    }
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for c in clients {
        c.await??;
    }
    Ok((per_client * 4) as f64 / t0.elapsed().as_secs_f64())
}

/// Prints the floor measured before and after a run, and the run's ratios to it
/// (`p50`: a linear task's, in ms).
pub(crate) fn report_floor(before: &Floor, after: &Floor, batch: u32, p50: f64, steps_per_s: f64) {
    println!("\n(c) the floor: raw PGMQ on the same server, batch {batch}");
    for (label, f) in [("before", before), ("after ", after)] {
        println!(
            "    {label}: send->read->delete {:.0} msgs/s; 3-hop ping-pong p50 {:.2} ms p99 {:.2} ms",
            f.msgs_per_s, f.hop3_p50, f.hop3_p99
        );
    }
    let msgs = (before.msgs_per_s + after.msgs_per_s) / 2.0;
    let hop3 = (before.hop3_p50 + after.hop3_p50) / 2.0;
    println!(
        "\nratios (ours / floor): per-step p50 latency {:.1}x of a raw hop; throughput {:.2}x of raw send->read->delete",
        (p50 / 4.0) / (hop3 / 3.0),
        steps_per_s / msgs
    );
    println!(
        "noise: floor before vs after differs by {:.0}%",
        100.0 * (before.msgs_per_s - after.msgs_per_s).abs() / msgs
    );
}
