//! Chaos: tasker as separate processes (2 `tasker server`, 2 `tasker worker`)
//! on a private PostgreSQL cluster, while a random process is SIGKILLed and
//! restarted every ~3 s, a worker is SIGSTOPped past its lease and woken
//! again, and PostgreSQL is restarted once with no process restarted.
//!
//! Asserted: every task completes with exact results; exactly one `complete`
//! transition per step; no message left in any PGMQ queue; per-step latency
//! back within 2× of before a few seconds after the restart; no step blocked
//! or retried because of crashes alone (every start beyond the first is a
//! counted recovery, `attempts - recoveries = 1`); the SIGSTOPped worker's late
//! result recorded stale, not applied. Also: a worker SIGKILLed 5 times while
//! holding one step of `max_attempts: 3` does not fail that step. And a
//! worker woken after its step was taken over must not keep that step's
//! lease alive (its heartbeat is for an attempt no longer current).
//!
//! The victims and delays come from a seeded generator: the seed is printed,
//! and `CHAOS_SEED=<n>` replays the same sequence.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use uuid::Uuid;

use tasker_model::template::Template;
use tasker_notify::Wakeups;
use tasker_store as store;
use tasker_store::db::{find_pg_bin_dir, PrivateCluster};
use tasker_store::template::TemplateCache;
use tasker_testkit::{eventually, example, migrated, new_task, register_inline, steps};

mod common;
use common::{free_port, tasker_bin};

/// Held by each test of this file while it needs a quiet machine (the chaos
/// test's latency measurement; the crash test's leases): both run in one
/// binary, in parallel otherwise.
static QUIET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The step lease of the chaos test's processes, seconds.
const LEASE: u64 = 4;
/// What the chaos test's processes are told (and the lease, the database).
const CHAOS_ENV: &[(&str, &str)] = &[
    ("TASKER_ENV", "test"),
    ("TASKER_WORKER__HEARTBEAT_INTERVAL_SECONDS", "1"),
    // Slow fallback polls: a step that moves only by polling costs ~0.5 s,
    // so lost wake-ups show in the latency check.
    ("TASKER_QUEUES__POLL_INTERVAL_MS", "1000"),
    ("TASKER_ORCHESTRATION__FALLBACK_POLL_INTERVAL_MS", "1000"),
];
const NS: &str = "chaos";
/// The example templates the load is made of (4, 4, 7 and 7 steps of `math.compute`).
const SHAPES: [&str; 4] = ["diamond", "linear", "mixed_dag", "tree"];
/// Every step of the chaos templates: two tries at most, so one crash that
/// spent a try would block a task at the second.
const MAX_ATTEMPTS: u32 = 2;
const NAP_MS: u64 = 2000;
/// A sleeping step for the SIGSTOPped worker to hold, beside two math steps.
const NAP: &str = r#"
namespace: chaos
name: nap
version: 1.0.0
steps:
  - { name: nap, handler: { name: demo.sleep, config: { ms: 2000 } }, retry: { max_attempts: 2 } }
  - { name: a, handler: { name: math.compute, config: { op: square } }, retry: { max_attempts: 2 } }
  - { name: b, handler: { name: math.compute, config: { op: add, operand: 1 } }, depends_on: [a], retry: { max_attempts: 2 } }
"#;

// ---------------------------------------------------------------- processes

/// A `tasker` process that can be SIGKILLed and started again with the same
/// arguments; its stderr goes (appended across restarts) to a log file. Killed
/// when dropped; on a failing test its log's tail is printed.
struct Proc {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Child,
    /// SIGSTOPped now.
    stopped: bool,
    starts: u32,
}

impl Proc {
    fn start(name: &str, dir: &Path, args: &[&str], env: &[(String, String)]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = spawn(&args, env, &log);
        Proc {
            name: name.to_string(),
            args,
            env: env.to_vec(),
            log,
            child,
            stopped: false,
            starts: 1,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then the same command again.
    fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.args, &self.env, &self.log);
        self.starts += 1;
    }

    fn signal(&mut self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {} ({}) failed", self.pid(), self.name);
        self.stopped = sig == "STOP";
    }

    /// Panics (with its log) if the process ended by itself.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited by itself ({status}):\n{}",
                self.name,
                tail(&self.log, 60)
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.stopped {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(self.pid().to_string())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ({} starts):\n{}",
                self.name,
                self.starts,
                tail(&self.log, 40)
            );
        }
    }
}

fn spawn(args: &[String], env: &[(String, String)], log: &Path) -> Child {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(tasker_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start tasker")
}

fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The status of `GET path` on 127.0.0.1:`port`, if it answers.
async fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.ok()?;
    String::from_utf8_lossy(&raw)
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn until_ready(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if http_status(port, "/health/ready").await == Some(200) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// splitmix64: enough randomness to pick victims and delays, reproducible
/// from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A duration in `lo_ms..hi_ms`.
    fn millis(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(lo_ms + self.below(hi_ms - lo_ms))
    }
}

// ---------------------------------------------------------------- expected values

/// The value every step of `tpl` computes for input `value` (the
/// `math.compute` handler: a root takes the input, any other step the sum of
/// its parents' values).
fn expected_values(tpl: &Template, value: i64) -> BTreeMap<String, i64> {
    let mut done: BTreeMap<String, i64> = BTreeMap::new();
    while done.len() < tpl.steps.len() {
        let before = done.len();
        for s in &tpl.steps {
            if done.contains_key(&s.name) || s.handler.name != "math.compute" {
                continue;
            }
            if !s.depends_on.iter().all(|p| done.contains_key(p)) {
                continue;
            }
            let n: i64 = if s.depends_on.is_empty() {
                value
            } else {
                s.depends_on.iter().map(|p| done[p]).sum()
            };
            let operand = s.handler.config["operand"].as_i64().unwrap_or(0);
            let v = match s.handler.config["op"].as_str().unwrap_or("square") {
                "square" => n * n,
                "add" => n + operand,
                "multiply" => n * operand,
                other => panic!("op {other}"),
            };
            done.insert(s.name.clone(), v);
        }
        if done.len() == before {
            break; // the rest are not math steps
        }
    }
    done
}

/// A task the test created, and what its steps must end with.
struct Planned {
    id: Uuid,
    template: String,
    value: i64,
    wave: &'static str,
}

fn median(mut v: Vec<Duration>) -> Duration {
    assert!(!v.is_empty(), "median of nothing");
    v.sort();
    v[v.len() / 2]
}

// ---------------------------------------------------------------- the chaos test

/// Tasks being created on a task of their own: (id, template, value).
type Burst = JoinHandle<Vec<(Uuid, &'static str, i64)>>;

/// A SIGKILL: when, of which process, holding how many claimed steps.
struct Kill {
    at: Duration,
    who: String,
    held: i64,
}

/// The SIGSTOPped worker and the step it held.
#[derive(Debug, Clone)]
struct Zombie {
    proc: usize,
    worker: String,
    step: Uuid,
    attempt: i32,
    stopped_at: Instant,
}

enum ZombiePhase {
    /// Not in this wave, or over.
    Off,
    /// Nap tasks are created at this offset into the wave.
    At(Duration),
    /// Looking for a worker that holds a nap step.
    Seeking(Instant),
    Stopped(Zombie),
    /// SIGCONTed; waiting for its late result to be recorded.
    Resumed(Zombie, Instant),
}

struct Chaos {
    pool: PgPool,
    wakeups: Wakeups,
    cache: TemplateCache,
    templates: BTreeMap<String, Template>,
    procs: Vec<Proc>,
    server_ports: Vec<u16>,
    rng: Rng,
    t0: Instant,
    kills: Vec<Kill>,
    tasks: Vec<Planned>,
    zombie: Option<(Zombie, Duration)>,
}

/// Creates a task of `chaos/<template>` (retrying while the pool meets dead
/// connections, with an idempotency key) and announces it.
async fn create_task(
    pool: &PgPool,
    wakeups: &Wakeups,
    cache: &TemplateCache,
    template: &str,
    value: i64,
) -> Uuid {
    // A retry after a lost answer must not make a second task.
    let mut req = new_task(NS, template, json!({ "value": value }));
    req.idempotency_key = Some(Uuid::now_v7().to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store::task::create(pool, cache, &req, "chaos-test").await {
            Ok((created, changed)) => {
                wakeups.announce(&changed);
                return created.task_id;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("creating a task of {template}: {e}"),
        }
    }
}

impl Chaos {
    async fn create(&mut self, template: &str, value: i64, wave: &'static str) -> Uuid {
        let id = create_task(&self.pool, &self.wakeups, &self.cache, template, value).await;
        self.tasks.push(Planned {
            id,
            template: template.to_string(),
            value,
            wave,
        });
        id
    }

    /// Creates `plan` (template, value) on a task of its own, while the
    /// caller goes on.
    fn burst(&self, plan: Vec<(&'static str, i64)>) -> Burst {
        let (pool, wakeups, cache) = (self.pool.clone(), self.wakeups.clone(), self.cache.clone());
        tokio::spawn(async move {
            let mut made = Vec::new();
            for (template, value) in plan {
                let id = create_task(&pool, &wakeups, &cache, template, value).await;
                made.push((id, template, value));
            }
            made
        })
    }

    fn check_alive(&mut self) {
        for p in &mut self.procs {
            p.assert_running();
        }
    }

    /// SIGKILLs a random process that is not SIGSTOPped and starts it again.
    /// A worker is killed once it holds a claimed step (or after 1 s): the
    /// worst moment for it.
    async fn kill_one(&mut self) {
        let candidates: Vec<usize> = (0..self.procs.len())
            .filter(|&i| !self.procs[i].stopped)
            .collect();
        let victim = candidates[self.rng.below(candidates.len() as u64) as usize];
        let mut held = 0;
        if self.procs[victim].args[0] == "worker" {
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                held = self.steps_held_by(self.procs[victim].pid()).await;
                if held > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        self.procs[victim].kill_and_restart();
        self.kills.push(Kill {
            at: self.t0.elapsed(),
            who: self.procs[victim].name.clone(),
            held,
        });
    }

    /// How many steps the worker process `pid` has claimed and not reported.
    async fn steps_held_by(&self, pid: u32) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM tasker.steps s
               JOIN LATERAL (SELECT processor_id FROM tasker.step_transitions t
                              WHERE t.step_id = s.id AND t.to_state = 'in_progress'
                                AND t.attempt = s.attempts
                              ORDER BY t.id DESC LIMIT 1) x ON true
              WHERE s.state = 'in_progress'
                AND x.processor_id IN (SELECT id FROM tasker.workers
                                        WHERE pid = $1 AND stopped_at IS NULL)",
        )
        .bind(pid as i32)
        .fetch_one(&self.pool)
        .await
        .unwrap_or(0)
    }

    /// `rounds` rounds of 2.5–3.5 s: a burst of `per_round` tasks and, while
    /// they are created and run, a random process SIGKILLed and started
    /// again. Then waits until every task so far has settled.
    async fn wave(
        &mut self,
        label: &'static str,
        rounds: usize,
        per_round: usize,
        mut zombie: ZombiePhase,
    ) {
        let start = Instant::now();
        let mut next_round = start;
        let mut kill_at = None;
        let mut burst: Option<Burst> = None;
        let mut round = 0;
        let mut made = 0usize;
        loop {
            if round < rounds && Instant::now() >= next_round {
                self.join(burst.take(), label).await;
                let plan = (made..made + per_round)
                    .map(|i| (SHAPES[i % SHAPES.len()], (i % 37) as i64 + 1))
                    .collect();
                made += per_round;
                burst = Some(self.burst(plan));
                round += 1;
                kill_at = Some(Instant::now() + self.rng.millis(50, 400));
                next_round = Instant::now() + self.rng.millis(2500, 3500);
            }
            if kill_at.is_some_and(|at| Instant::now() >= at) {
                self.kill_one().await;
                kill_at = None;
            }
            zombie = self.zombie_step(zombie, start.elapsed()).await;
            self.check_alive();
            if round == rounds && kill_at.is_none() && matches!(zombie, ZombiePhase::Off) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.join(burst.take(), label).await;
        let ids: Vec<Uuid> = self.tasks.iter().map(|t| t.id).collect();
        self.settle(&ids, Duration::from_secs(60), label).await;
    }

    async fn join(&mut self, burst: Option<Burst>, wave: &'static str) {
        let Some(burst) = burst else { return };
        for (id, template, value) in burst.await.expect("creating a burst of tasks") {
            self.tasks.push(Planned {
                id,
                template: template.to_string(),
                value,
                wave,
            });
        }
    }

    /// Waits until none of `ids` is still running (complete, or stuck in a
    /// state the final checks report).
    async fn settle(&mut self, ids: &[Uuid], within: Duration, label: &str) {
        let deadline = Instant::now() + within;
        loop {
            let open: Result<Vec<(String, i64)>, _> = sqlx::query_as(
                "SELECT state, count(*) FROM tasker.tasks WHERE id = ANY ($1)
                    AND state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually',
                                      'blocked_by_failures')
                  GROUP BY state",
            )
            .bind(ids)
            .fetch_all(&self.pool)
            .await;
            match open {
                Ok(open) if open.is_empty() => return,
                open if Instant::now() >= deadline => {
                    panic!("wave {label}: tasks still open after {within:?}: {open:?}")
                }
                _ => {}
            }
            self.check_alive();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One tick of the SIGSTOP scenario: create nap tasks, find a worker that
    /// holds a nap step, stop it, wait until another worker took the step
    /// over (its lease expired), wake it, wait until its late result is
    /// recorded.
    async fn zombie_step(&mut self, phase: ZombiePhase, now: Duration) -> ZombiePhase {
        match phase {
            ZombiePhase::Off => ZombiePhase::Off,
            ZombiePhase::At(at) if now < at => ZombiePhase::At(at),
            ZombiePhase::At(_) => {
                for v in 1..=6 {
                    self.create("nap", v, "nap").await;
                }
                ZombiePhase::Seeking(Instant::now())
            }
            ZombiePhase::Seeking(since) => {
                assert!(
                    since.elapsed() < Duration::from_secs(30),
                    "no worker was seen holding a nap step"
                );
                if let Some(z) = self.stop_a_nap_holder().await {
                    return ZombiePhase::Stopped(z);
                }
                if since.elapsed() > Duration::from_secs(8) && self.nap_steps_open().await == 0 {
                    // Every nap finished before one could be caught: more.
                    for v in 1..=4 {
                        self.create("nap", v, "nap").await;
                    }
                    return ZombiePhase::Seeking(Instant::now());
                }
                ZombiePhase::Seeking(since)
            }
            ZombiePhase::Stopped(z) => {
                let attempts: i32 =
                    sqlx::query_scalar("SELECT attempts FROM tasker.steps WHERE id = $1")
                        .bind(z.step)
                        .fetch_one(&self.pool)
                        .await
                        .unwrap();
                assert!(
                    z.stopped_at.elapsed() < Duration::from_secs(40),
                    "the SIGSTOPped worker's step was never taken over"
                );
                if attempts > z.attempt {
                    // Past its lease, and the step runs elsewhere: wake the zombie.
                    let stopped_for = z.stopped_at.elapsed();
                    self.procs[z.proc].signal("CONT");
                    self.zombie = Some((z.clone(), stopped_for));
                    return ZombiePhase::Resumed(z, Instant::now());
                }
                ZombiePhase::Stopped(z)
            }
            ZombiePhase::Resumed(z, since) => {
                let recorded: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM tasker.step_results
                      WHERE step_id = $1 AND attempt = $2 AND worker_id = $3",
                )
                .bind(z.step)
                .bind(z.attempt)
                .bind(&z.worker)
                .fetch_one(&self.pool)
                .await
                .unwrap();
                assert!(
                    since.elapsed() < Duration::from_secs(20),
                    "the woken worker's late result for step {} attempt {} was never recorded",
                    z.step,
                    z.attempt
                );
                if recorded > 0 {
                    ZombiePhase::Off
                } else {
                    ZombiePhase::Resumed(z, since)
                }
            }
        }
    }

    async fn nap_steps_open(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM tasker.steps WHERE name = 'nap' AND state <> 'complete'",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// SIGSTOPs a worker process of ours that runs a nap step now, if any.
    async fn stop_a_nap_holder(&mut self) -> Option<Zombie> {
        let held: Vec<(Uuid, i32, String, i32)> = sqlx::query_as(
            "SELECT s.id, s.attempts, x.processor_id, w.pid
               FROM tasker.steps s
               JOIN LATERAL (SELECT processor_id FROM tasker.step_transitions t
                              WHERE t.step_id = s.id AND t.to_state = 'in_progress'
                                AND t.attempt = s.attempts
                              ORDER BY t.id DESC LIMIT 1) x ON true
               JOIN tasker.workers w ON w.id = x.processor_id
              WHERE s.name = 'nap' AND s.state = 'in_progress'",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap();
        for (step, attempt, worker, pid) in held {
            let Some(i) = (0..self.procs.len()).find(|&i| {
                self.procs[i].pid() as i32 == pid
                    && !self.procs[i].stopped
                    && self.procs[i].args[0] == "worker"
            }) else {
                continue;
            };
            self.procs[i].signal("STOP");
            let stopped_at = Instant::now();
            // Whatever it had sent is applied by now; does it still hold the step?
            tokio::time::sleep(Duration::from_millis(300)).await;
            let still: (String, i32) =
                sqlx::query_as("SELECT state, attempts FROM tasker.steps WHERE id = $1")
                    .bind(step)
                    .fetch_one(&self.pool)
                    .await
                    .unwrap();
            if still == ("in_progress".to_string(), attempt) {
                return Some(Zombie {
                    proc: i,
                    worker,
                    step,
                    attempt,
                    stopped_at,
                });
            }
            self.procs[i].signal("CONT");
        }
        None
    }

    /// Runs one linear task (4 steps) to completion, polling every 5 ms; its
    /// time per step.
    async fn probe(&mut self) -> Duration {
        let task = self.create("linear", 2, "probe").await;
        let started = Instant::now();
        loop {
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM tasker.tasks WHERE id = $1")
                    .bind(task)
                    .fetch_optional(&self.pool)
                    .await
                    .unwrap_or(None);
            if state.as_deref() == Some("complete") {
                return started.elapsed() / 4;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "probe task {task} did not complete within 30 s (state {state:?})"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Tasks of waves A and C: 150 + 120, with the 30 of wave B (created just
/// before PostgreSQL stops) 300; plus the nap tasks and the latency probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kills_a_restart_and_a_stopped_worker_lose_double_and_block_nothing() {
    if find_pg_bin_dir().is_err() {
        eprintln!("skipped: no PostgreSQL server binaries on this machine");
        return;
    }
    let t0 = Instant::now();
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("chaos seed {seed} (replay the same victims and delays: CHAOS_SEED={seed})");

    let dir = std::env::temp_dir().join(format!("tasker-chaos-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cluster =
        PrivateCluster::start(&dir.join("pgdata"), free_port()).expect("private cluster");
    let mut admin = PgConnectOptions::from_str(&cluster.url("postgres"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE tasker_chaos")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = cluster.url("tasker_chaos");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(PgConnectOptions::from_str(&url).unwrap())
        .await
        .unwrap();
    migrated(&pool).await;
    let mut templates = BTreeMap::new();
    for shape in SHAPES {
        let mut tpl = example(shape);
        tpl.namespace = NS.into();
        for s in &mut tpl.steps {
            s.retry.max_attempts = MAX_ATTEMPTS;
        }
        store::template::register(&pool, &tpl).await.unwrap();
        templates.insert(shape.to_string(), tpl);
    }
    templates.insert("nap".into(), register_inline(&pool, NAP).await);

    let mut env: Vec<(String, String)> = CHAOS_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("TASKER_DATABASE__URL".into(), url.clone()));
    env.push((
        "TASKER_QUEUES__VISIBILITY_TIMEOUT_SECONDS".into(),
        LEASE.to_string(),
    ));
    let server_ports = [free_port(), free_port()];
    let mut procs = Vec::new();
    for (i, port) in server_ports.iter().enumerate() {
        let mut e = env.clone();
        e.push(("TASKER_WEB__BIND".into(), format!("127.0.0.1:{port}")));
        procs.push(Proc::start(&format!("server{i}"), &dir, &["server"], &e));
    }
    for i in 0..2 {
        procs.push(Proc::start(
            &format!("worker{i}"),
            &dir,
            &["worker", "--namespace", NS],
            &env,
        ));
    }
    let wakeups = Wakeups::new(&pool);
    let mut chaos = Chaos {
        pool: pool.clone(),
        wakeups,
        cache: TemplateCache::default(),
        templates,
        procs,
        server_ports: server_ports.to_vec(),
        rng: Rng(seed),
        t0,
        kills: Vec::new(),
        tasks: Vec::new(),
        zombie: None,
    };
    for port in server_ports {
        assert!(
            until_ready(port, Duration::from_secs(30)).await,
            "the server on {port} never became ready"
        );
    }
    let registered = eventually(Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tasker.workers WHERE stopped_at IS NULL")
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == 2)
    })
    .await;
    assert!(registered, "the two workers never registered");
    let setup_took = t0.elapsed();

    // Wave A: kills, and a worker SIGSTOPped past its lease.
    let wave_a_at = t0.elapsed();
    chaos
        .wave("A", 5, 30, ZombiePhase::At(Duration::from_secs(4)))
        .await;
    let wave_a_took = t0.elapsed() - wave_a_at;

    // The PostgreSQL restart, on a quiet machine: no kills from before the
    // first probe to the last one.
    let quiet = QUIET.lock().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut before = Vec::new();
    for _ in 0..5 {
        before.push(chaos.probe().await);
    }
    let before = median(before);
    // Wave B: in flight when PostgreSQL stops (fast: every session
    // terminated, as a restart does).
    for i in 0..30 {
        chaos
            .create(SHAPES[i % SHAPES.len()], i as i64 + 1, "B")
            .await;
    }
    let stopped_at = Instant::now();
    cluster.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.start_again().expect("PostgreSQL starts again");
    let up = Instant::now();
    let down_for = up - stopped_at;
    let mut after: Vec<(Duration, Duration)> = Vec::new();
    while up.elapsed() < Duration::from_secs(11) {
        let created_at = up.elapsed();
        let per_step = chaos.probe().await;
        after.push((created_at, per_step));
        chaos.check_alive();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(quiet);
    let first_step_after: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM min(completed_at) - pg_postmaster_start_time())::float8
           FROM tasker.steps WHERE completed_at >= pg_postmaster_start_time()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let settled_after_5s: Vec<Duration> = after
        .iter()
        .filter(|(at, _)| *at >= Duration::from_secs(5))
        .map(|(_, d)| *d)
        .collect();
    let after_5s = median(settled_after_5s);
    let after_10s = median(
        after
            .iter()
            .filter(|(at, _)| *at >= Duration::from_secs(9))
            .map(|(_, d)| *d)
            .collect(),
    );

    // Wave C: kills again.
    let wave_c_at = t0.elapsed();
    chaos.wave("C", 4, 30, ZombiePhase::Off).await;
    let wave_c_took = t0.elapsed() - wave_c_at;
    let all: Vec<Uuid> = chaos.tasks.iter().map(|t| t.id).collect();
    chaos.settle(&all, Duration::from_secs(30), "all").await;

    // ------------------------------------------------------------ invariants
    // Every task complete: none blocked by failures or in error.
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM tasker.tasks GROUP BY state ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        states,
        vec![("complete".to_string(), chaos.tasks.len() as i64)],
        "every task complete"
    );
    // Results exact, step by step.
    let zombie = chaos.zombie.clone().expect("a worker was SIGSTOPped");
    for t in &chaos.tasks {
        let tpl = &chaos.templates[&t.template];
        let want = expected_values(tpl, t.value);
        let got = steps(&pool, t.id).await;
        assert_eq!(got.len(), tpl.steps.len(), "task {} ({})", t.id, t.template);
        for (name, s) in &got {
            assert_eq!(s.state, "complete", "task {} step {name}", t.id);
            let want = match want.get(name) {
                Some(v) => json!({ "value": v }),
                // The nap: the result of the attempt that is current, never
                // the SIGSTOPped worker's.
                None => json!({ "slept_ms": NAP_MS, "attempt": s.attempts }),
            };
            assert_eq!(
                s.result.as_ref(),
                Some(&want),
                "task {} ({} of {}, wave {}) step {name}",
                t.id,
                t.template,
                t.value,
                t.wave
            );
            // Every start beyond the first took over from a lost worker: no
            // try was spent by a crash, and none failed.
            assert_eq!(
                s.attempts - s.recoveries,
                1,
                "task {} step {name}: {} attempts, {} recoveries",
                t.id,
                s.attempts,
                s.recoveries
            );
        }
    }
    // Exactly one `complete` transition per step, one per task.
    let steps_total: i64 = sqlx::query_scalar("SELECT count(*) FROM tasker.steps")
        .fetch_one(&pool)
        .await
        .unwrap();
    let not_once: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT s.id, (SELECT count(*) FROM tasker.step_transitions x
                        WHERE x.step_id = s.id AND x.to_state = 'complete')
           FROM tasker.steps s
          WHERE (SELECT count(*) FROM tasker.step_transitions x
                  WHERE x.step_id = s.id AND x.to_state = 'complete') <> 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        not_once.is_empty(),
        "steps without exactly one complete transition: {not_once:?}"
    );
    let tasks_not_once: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.tasks t
          WHERE (SELECT count(*) FROM tasker.task_transitions x
                  WHERE x.task_id = t.id AND x.to_state = 'complete') <> 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tasks_not_once, 0, "a task completed other than once");
    // One applied result per step, a success; anything else is stale.
    let applied_not_once: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.steps s
          WHERE (SELECT count(*) FROM tasker.step_results r
                  WHERE r.step_id = s.id AND NOT r.stale) <> 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        applied_not_once, 0,
        "a step with other than one applied result"
    );
    let failed: Vec<(Uuid, Option<Value>)> = sqlx::query_as(
        "SELECT step_id, error FROM tasker.step_results WHERE NOT stale AND outcome <> 'success'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(failed.is_empty(), "failed attempts: {failed:?}");
    // The SIGSTOPped worker's late result: recorded, stale.
    let zombie_results: Vec<(bool, String)> = sqlx::query_as(
        "SELECT stale, outcome FROM tasker.step_results
          WHERE step_id = $1 AND attempt = $2 AND worker_id = $3",
    )
    .bind(zombie.0.step)
    .bind(zombie.0.attempt)
    .bind(&zombie.0.worker)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        !zombie_results.is_empty() && zombie_results.iter().all(|(stale, _)| *stale),
        "the late result of the SIGSTOPped worker must be recorded stale: {zombie_results:?}"
    );
    let stale_total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasker.step_results WHERE stale")
            .fetch_one(&pool)
            .await
            .unwrap();
    // No message left behind in any queue (a message a killed worker had
    // leased goes once a worker reads it again).
    let queues: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = 'pgmq' AND table_name LIKE 'q\\_%' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        queues.iter().any(|q| q == "q_steps_chaos")
            && queues.iter().any(|q| q == "q_orchestration_results"),
        "{queues:?}"
    );
    let mut left = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3 * LEASE);
    loop {
        left.clear();
        for q in &queues {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM pgmq.{q}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            if n > 0 {
                left.push((q.clone(), n));
            }
        }
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(left.is_empty(), "messages left behind: {left:?}");
    // Latency back to normal: within 2x of before for tasks created 5 s or
    // more after PostgreSQL came back, give or take 30 ms of a noisy
    // machine (lost wake-ups cost ~0.5 s a step with 1 s polls).
    let normal = before * 2 + Duration::from_millis(30);
    // The servers serve their API after all this.
    for port in &chaos.server_ports {
        assert!(
            until_ready(*port, Duration::from_secs(10)).await,
            "the server on {port} is not ready at the end"
        );
    }
    chaos.check_alive();

    // ------------------------------------------------------------ figures
    let rerun_steps: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasker.steps WHERE attempts > 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let recoveries: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(recoveries), 0)::bigint FROM tasker.steps")
            .fetch_one(&pool)
            .await
            .unwrap();
    let worst = |wave: &'static str| {
        let ids: Vec<Uuid> = chaos
            .tasks
            .iter()
            .filter(|t| t.wave == wave)
            .map(|t| t.id)
            .collect();
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, f64>(
                "SELECT extract(epoch FROM max(completed_at - created_at))::float8
                   FROM tasker.tasks WHERE id = ANY ($1)",
            )
            .bind(ids)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (worst_a, worst_b, worst_c) = (worst("A").await, worst("B").await, worst("C").await);
    // Takeovers, by who had held the step: the SIGSTOPped worker, or a
    // process killed (or PostgreSQL restarted) under it.
    let (reclaims, after_stop): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE prev.processor_id = $1)
           FROM tasker.step_transitions r
           JOIN LATERAL (SELECT p.processor_id FROM tasker.step_transitions p
                          WHERE p.step_id = r.step_id AND p.to_state = 'in_progress'
                            AND p.id < r.id ORDER BY p.id DESC LIMIT 1) prev ON true
          WHERE r.event = 'lease_expired_reclaim'",
    )
    .bind(&zombie.0.worker)
    .fetch_one(&pool)
    .await
    .unwrap();
    let worker_kills = chaos
        .kills
        .iter()
        .filter(|k| k.who.starts_with("worker"))
        .count();
    let held_at_kills: i64 = chaos.kills.iter().map(|k| k.held).sum();
    eprintln!(
        "--- chaos: 2 servers + 2 workers (separate processes), private PostgreSQL, seed {seed}"
    );
    eprintln!(
        "tasks: {} ({} steps) in waves A 150, B 30 (across the restart), C 120, + nap and probe tasks",
        chaos.tasks.len(),
        steps_total
    );
    eprintln!(
        "kills: {} ({} of workers, holding {held_at_kills} claimed steps), every ~3 s: {}",
        chaos.kills.len(),
        worker_kills,
        chaos
            .kills
            .iter()
            .map(|k| format!("{:.1}s {} ({} held)", k.at.as_secs_f64(), k.who, k.held))
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!(
        "SIGSTOPped {} holding a nap step at attempt {}, for {:.1} s until another worker took the step over \
         (lease {LEASE} s); its late result recorded stale ({} stale results in all)",
        chaos.procs[zombie.0.proc].name,
        zombie.0.attempt,
        zombie.1.as_secs_f64(),
        stale_total
    );
    eprintln!(
        "re-runs per kill: {} takeovers after kills / {} kills = {:.2} ({after_stop} more after the SIGSTOP; \
         {rerun_steps} steps ran more than once, {recoveries} recoveries in all)",
        reclaims - after_stop,
        chaos.kills.len(),
        (reclaims - after_stop) as f64 / chaos.kills.len().max(1) as f64
    );
    eprintln!("PostgreSQL down {down_for:?}; first step completed {first_step_after:.3} s after it was back up");
    eprintln!(
        "per-step latency (linear task, 4 steps, alone): before the restart {before:?}; \
         tasks created 5-11 s after {after_5s:?}, 9-11 s after {after_10s:?} (limit {normal:?})"
    );
    let mut by_second: BTreeMap<u64, Vec<Duration>> = BTreeMap::new();
    for (at, d) in &after {
        by_second.entry(at.as_secs()).or_default().push(*d);
    }
    eprintln!(
        "per-step latency after the restart, median by second the task was created in: {}",
        by_second
            .into_iter()
            .map(|(s, d)| format!("{s}s {:.1}ms", median(d).as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!(
        "worst task latency: wave A {worst_a:.2} s, wave B (across the restart) {worst_b:.2} s, wave C {worst_c:.2} s"
    );
    eprintln!(
        "wall time {:?}: setup {setup_took:?}, wave A {wave_a_took:?}, wave C {wave_c_took:?}",
        t0.elapsed()
    );
    assert!(
        after_5s <= normal,
        "per-step latency of tasks created 5 s or more after the restart is {after_5s:?}, \
         before {before:?}: {after:?}"
    );

    drop(chaos);
    pool.close().await;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- five crashes, one step

const CRASHY: &str = r#"
namespace: crash
name: nap
version: 1.0.0
steps:
  - { name: nap, handler: { name: demo.sleep, config: { ms: 3000 } }, retry: { max_attempts: 3 } }
  - { name: after, handler: { name: demo.sleep, config: { ms: 1 } }, depends_on: [nap] }
"#;

fn db_url(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "postgres://postgres@{}:{}/{}",
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("postgres")
    )
}

#[sqlx::test(migrations = false)]
async fn a_worker_killed_5_times_holding_a_step_of_max_attempts_3_the_task_completes(pool: PgPool) {
    let _quiet = QUIET.lock().await;
    migrated(&pool).await;
    register_inline(&pool, CRASHY).await;
    let dir = std::env::temp_dir().join(format!("tasker-crash-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let env: Vec<(String, String)> = [
        ("TASKER_ENV", "test"),
        ("TASKER_DATABASE__URL", db_url(&pool).as_str()),
        ("TASKER_QUEUES__VISIBILITY_TIMEOUT_SECONDS", "3"),
        ("TASKER_WORKER__HEARTBEAT_INTERVAL_SECONDS", "1"),
        ("TASKER_WEB__BIND", "127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let _server = Proc::start("server", &dir, &["server"], &env);
    let mut worker = Proc::start("worker", &dir, &["worker", "--namespace", "crash"], &env);
    let cache = TemplateCache::default();
    let wakeups = Wakeups::new(&pool);
    let (created, changed) = store::task::create(
        &pool,
        &cache,
        &new_task("crash", "nap", json!({})),
        "crash-test",
    )
    .await
    .unwrap();
    wakeups.announce(&changed);
    let task = created.task_id;

    // Five times: as soon as a worker has claimed the step, SIGKILL it and
    // start another, which takes the step over once the lease runs out.
    for kill in 1..=5 {
        let claimed = eventually(Duration::from_secs(30), || async {
            steps(&pool, task)
                .await
                .get("nap")
                .is_some_and(|s| s.state == "in_progress" && s.attempts == kill)
        })
        .await;
        assert!(claimed, "the step was not claimed for the {kill}. time");
        worker.kill_and_restart();
    }
    let done = eventually(Duration::from_secs(30), || async {
        tasker_testkit::task_state(&pool, task).await == "complete"
    })
    .await;
    let s = steps(&pool, task).await;
    assert!(done, "the task did not complete: {s:#?}");
    let nap = &s["nap"];
    assert_eq!(
        (nap.attempts, nap.recoveries, nap.max_attempts),
        (6, 5, 3),
        "{nap:#?}"
    );
    assert_eq!(nap.result, Some(json!({ "slept_ms": 3000, "attempt": 6 })));
    assert_eq!(s["after"].state, "complete");
    let events: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event, count(*) FROM tasker.step_transitions WHERE step_id = $1
          GROUP BY event ORDER BY event",
    )
    .bind(nap.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let count = |e: &str| events.iter().find(|(n, _)| n == e).map_or(0, |(_, c)| *c);
    assert_eq!(count("claim"), 1, "{events:?}");
    assert_eq!(count("lease_expired_reclaim"), 5, "{events:?}");
    let completes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasker.step_transitions WHERE step_id = $1 AND to_state = 'complete'",
    )
    .bind(nap.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(completes, 1);
    drop(worker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A worker stopped past its lease and woken after another took its step
/// over must neither keep the step hidden nor run on: its heartbeat should
/// tell its handler to stop, and extend nothing.
///
/// Ignored: fails today. `engine/store/src/sql/heartbeat.sql` extends the
/// step message by `msg_id` alone, and a takeover re-reads the same message
/// (`claim_steps.sql`), so the stale holder's heartbeat keeps answering
/// "go on" and keeps pushing the lease of the current attempt forward. Here
/// the new holder is SIGKILLed right after the stale one wakes: the step is
/// taken over only when the stale handler has run its full 12 s (~12 s after
/// the kill), not one 3 s lease after it, and that handler is never cancelled.
#[sqlx::test(migrations = false)]
async fn a_stale_holders_heartbeat_neither_hides_the_step_nor_keeps_its_handler_running(
    pool: PgPool,
) {
    let _quiet = QUIET.lock().await;
    migrated(&pool).await;
    register_inline(&pool, &CRASHY.replace("ms: 3000", "ms: 12000")).await;
    let dir = std::env::temp_dir().join(format!("tasker-stale-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let env: Vec<(String, String)> = [
        ("TASKER_ENV", "test"),
        ("TASKER_DATABASE__URL", db_url(&pool).as_str()),
        ("TASKER_QUEUES__VISIBILITY_TIMEOUT_SECONDS", "3"),
        ("TASKER_WORKER__HEARTBEAT_INTERVAL_SECONDS", "1"),
        ("TASKER_WEB__BIND", "127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let _server = Proc::start("server", &dir, &["server"], &env);
    let mut stale = Proc::start("stale", &dir, &["worker", "--namespace", "crash"], &env);
    let cache = TemplateCache::default();
    let wakeups = Wakeups::new(&pool);
    let (created, changed) = store::task::create(
        &pool,
        &cache,
        &new_task("crash", "nap", json!({})),
        "stale-test",
    )
    .await
    .unwrap();
    wakeups.announce(&changed);
    let task = created.task_id;
    let attempts_reach = |n: i32, within: Duration| {
        let pool = pool.clone();
        async move {
            eventually(within, || async {
                steps(&pool, task)
                    .await
                    .get("nap")
                    .is_some_and(|s| s.attempts >= n)
            })
            .await
        }
    };
    assert!(attempts_reach(1, Duration::from_secs(20)).await);
    stale.signal("STOP");
    let mut current = Proc::start("current", &dir, &["worker", "--namespace", "crash"], &env);
    assert!(
        attempts_reach(2, Duration::from_secs(20)).await,
        "never taken over"
    );
    stale.signal("CONT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = current.child.kill();
    let _ = current.child.wait();
    let killed = Instant::now();
    // The holder of attempt 2 is dead: a lease (3 s) later the step is free.
    let taken = attempts_reach(3, Duration::from_secs(3 + 3)).await;
    assert!(
        taken,
        "the step of a dead worker stayed hidden {:?} after its death: the stale holder's \
         heartbeat extends its lease",
        killed.elapsed()
    );
    let recorded = eventually(Duration::from_secs(15), || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM tasker.step_results r JOIN tasker.steps s ON s.id = r.step_id
              WHERE s.name = 'nap' AND r.attempt = 1",
        )
        .fetch_one(&pool)
        .await
        .is_ok_and(|n| n > 0)
    })
    .await;
    assert!(recorded, "the stale holder never reported");
    let first: (String, f64) = sqlx::query_as(
        "SELECT r.outcome, extract(epoch FROM r.finished_at - r.started_at)::float8
           FROM tasker.step_results r JOIN tasker.steps s ON s.id = r.step_id
          WHERE s.name = 'nap' AND r.attempt = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        first.0 != "success",
        "the stale holder's handler ran on to the end: {first:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
