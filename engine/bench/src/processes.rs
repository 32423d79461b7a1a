//! `tasker bench --processes`: the workflow benchmark in the shape users
//! deploy: `tasker server` (API and orchestrator) and `tasker worker` as
//! processes of their own, and this process as the client, submitting over
//! HTTP with the Rust client and following each task's events stream (SSE),
//! next to the raw PGMQ floor measured in the same run.
//!
//! The workflows are the examples' `demo/linear` and `demo/diamond` (the
//! worker's built-in `math.compute` handler: microseconds of work), so the
//! figures are tasker's own cost per step across processes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use tasker_api_types::CreateTaskRequest;
use tasker_client::{Client, TaskEvent};
use tasker_config::TaskerConfig;
use tasker_model::template::Template;
use tasker_store::queue;

use crate::database::{self, BenchDb, Claims, Target};
use crate::stats::summary;
use crate::workflow::{batched_creations, floor, report_floor, Options, Report, CREATION_BATCH};

const NAMESPACE: &str = "demo";
/// Creation alone runs here: no worker serves it.
const IDLE_NAMESPACE: &str = "bench_idle";
const LINEAR: &str = include_str!("../../../examples/templates/linear.yaml");
const DIAMOND: &str = include_str!("../../../examples/templates/diamond.yaml");

/// The queues the run writes to, checked in a named database before it runs.
pub fn claims() -> Claims {
    let mut claims = crate::workflow::claims();
    claims
        .queues
        .push(queue::step_queue(NAMESPACE).expect("a valid namespace"));
    claims
}

/// Runs the multi-process benchmark in `target`, starting `tasker` (the
/// binary at `tasker_bin`) as the server and the worker.
pub async fn run(
    options: &Options,
    config: &TaskerConfig,
    target: &Target,
    tasker_bin: PathBuf,
) -> anyhow::Result<Report> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are meaningful only with --release");
    }
    let options = options.clone();
    database::run_in(config, target, &claims(), move |db| {
        measure(options, db, tasker_bin)
    })
    .await
}

/// A child process, stopped with SIGTERM (then killed) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn measure(options: Options, db: BenchDb, tasker_bin: PathBuf) -> anyhow::Result<Report> {
    let pool = db.pool.clone();
    println!(
        "tasker bench --processes on {} ({}; {} cores): tasker server + tasker worker as processes, this process the HTTP client",
        db.display_url,
        if db.scratch { "a scratch database, dropped afterwards" } else { "the database named with --database-url" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    for text in [LINEAR, DIAMOND] {
        tasker_store::template::register(&pool, &Template::from_yaml_str(text, "<bench>")?).await?;
    }
    let batch = options.batch.max(1) as i32;
    let floor_before = floor(&pool, batch, &options).await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bind = format!("127.0.0.1:{port}");
    // A bootstrap key: accepted while the database holds no key of its own.
    let key = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let worker_concurrency = (options.batch * 2).max(8);
    let start = |args: &[&str]| -> anyhow::Result<Proc> {
        let child = Command::new(&tasker_bin)
            .args(args)
            .env("TASKER_DATABASE__URL", &db.url)
            .env(
                "TASKER_DATABASE__MAX_CONNECTIONS",
                options.connections.max(4).to_string(),
            )
            .env("TASKER_WEB__BIND", &bind)
            .env("TASKER_WEB__AUTH__BOOTSTRAP_KEY", &key)
            .env(
                "TASKER_ORCHESTRATION__RESULT_BATCH_SIZE",
                options.batch.to_string(),
            )
            .env("TASKER_ORCHESTRATION__SCHEDULE_TICK_INTERVAL_MS", "0")
            // The worker as the in-process run's: steps in flight bound the
            // throughput (about concurrency / a step's cycle time).
            .env("TASKER_WORKER__BATCH_SIZE", options.batch.to_string())
            .env("TASKER_WORKER__CONCURRENCY", worker_concurrency.to_string())
            .env("TASKER_TELEMETRY__LOG_LEVEL", "warn")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {} {args:?}: {e}", tasker_bin.display()))?;
        Ok(Proc(child))
    };
    let _server = start(&["server"])?;
    let _worker = start(&["worker", "--namespace", NAMESPACE])?;
    let client = Client::new(&format!("http://{bind}"), Some(key.clone()))?;
    let listening = Instant::now();
    while std::net::TcpStream::connect(&bind).is_err() {
        anyhow::ensure!(
            listening.elapsed() < Duration::from_secs(60),
            "tasker server did not listen on {bind} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let req = |name: &str| CreateTaskRequest {
        namespace: NAMESPACE.into(),
        name: name.into(),
        version: None,
        context: json!({ "value": 3 }),
        priority: 0,
        idempotency_key: None,
        run_at: None,
        delay_seconds: None,
    };

    // (a) sequential latency: create, then follow the events until the end.
    let run_one = |name: &'static str| {
        let (client, req) = (&client, req(name));
        async move {
            let created = client.create_task(&req).await?;
            let mut events = client.task_events(created.task_id).await?;
            let mut last = None;
            while let Some(ev) = events.next().await {
                if let TaskEvent::State(s) = ev? {
                    last = Some(s.state);
                }
            }
            anyhow::ensure!(
                last.as_deref() == Some("complete"),
                "task {} ended {last:?}",
                created.task_id
            );
            Ok::<_, anyhow::Error>(())
        }
    };
    // Warm-up: the worker registers, connections open, plans are made.
    for _ in 0..10 {
        tokio::time::timeout(Duration::from_secs(60), run_one("linear"))
            .await
            .map_err(|_| anyhow::anyhow!("a warm-up task took over 60 s (is the worker up?)"))??;
    }
    let mut lat = Vec::with_capacity(options.linear);
    for _ in 0..options.linear {
        let t0 = Instant::now();
        run_one("linear").await?;
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (p50, p99, min, max) = summary(lat);
    println!(
        "\n(a) sequential: {} linear 4-step tasks over HTTP, create -> the events stream says complete",
        options.linear
    );
    println!("    task latency  p50 {p50:.2} ms  p99 {p99:.2} ms  (min {min:.2}, max {max:.2})");
    println!(
        "    per step      p50 {:.2} ms  p99 {:.2} ms",
        p50 / 4.0,
        p99 / 4.0
    );

    // (b) throughput: 4 HTTP clients create; completion is counted in the database.
    let t0 = Instant::now();
    let creators: Vec<_> = (0..4)
        .map(|k| {
            let client = client.clone();
            let n = options.diamonds / 4 + usize::from(k < options.diamonds % 4);
            let r = req("diamond");
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(client.create_task(&r).await?.task_id);
                }
                Ok::<_, anyhow::Error>(ids)
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(options.diamonds);
    for c in creators {
        ids.extend(c.await??);
    }
    let created = t0.elapsed();
    let complete = loop {
        let (done, open): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'complete'),
                    count(*) FILTER (WHERE state NOT IN ('complete', 'error', 'cancelled', 'blocked_by_failures'))
               FROM tasker.tasks WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_one(&pool)
        .await?;
        if open == 0 {
            break done;
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(600),
            "the throughput run did not finish in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let elapsed = t0.elapsed().as_secs_f64();
    let steps = (ids.len() * 4) as f64;
    println!(
        "\n(b) throughput: {} diamond tasks ({steps} steps) from 4 HTTP clients, 1 server + 1 worker process (batch {}, concurrency {worker_concurrency})",
        ids.len(),
        options.batch
    );
    println!(
        "    all created in {:.2} s ({:.0} tasks/s over HTTP), all done in {elapsed:.2} s ({complete} complete)",
        created.as_secs_f64(),
        ids.len() as f64 / created.as_secs_f64()
    );
    println!(
        "    {:.0} steps/s, {:.0} tasks/s",
        steps / elapsed,
        ids.len() as f64 / elapsed
    );
    // (d) creation alone over HTTP, in batches (`POST /v1/tasks/batch`), in
    // a namespace nobody serves.
    let idle = DIAMOND.replace("namespace: demo", &format!("namespace: {IDLE_NAMESPACE}"));
    tasker_store::template::register(&pool, &Template::from_yaml_str(&idle, "<bench>")?).await?;
    let per_client = batched_creations(&options) / 4;
    let t0 = Instant::now();
    let creators: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let mut r = req("diamond");
            r.namespace = IDLE_NAMESPACE.into();
            let tasks = vec![r; CREATION_BATCH];
            tokio::spawn(async move {
                for _ in 0..per_client / CREATION_BATCH {
                    client.create_tasks(&tasks).await?;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for c in creators {
        c.await??;
    }
    let batched = (per_client * 4) as f64 / t0.elapsed().as_secs_f64();
    drop(_worker);
    drop(_server);

    let floor_after = floor(&pool, batch, &options).await?;
    report_floor(
        &floor_before,
        &floor_after,
        options.batch,
        p50,
        steps / elapsed,
    );
    println!(
        "\n(d) task creation alone over HTTP (4 clients, no workers), {CREATION_BATCH} tasks a request: {batched:.0} tasks/s"
    );
    Ok(Report {
        database: db.name,
        scratch: db.scratch,
        linear_p50_ms: p50,
        linear_p99_ms: p99,
        steps_per_s: steps / elapsed,
        diamonds_complete: complete,
        creation_per_s: ids.len() as f64 / created.as_secs_f64(),
        creation_batched_per_s: batched,
    })
}
