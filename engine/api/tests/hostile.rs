//! Hostile input against a real server (issue 16): each test performs one
//! finding's attack and asserts its bounded outcome — the status and the
//! limit named, the time taken, the growth of the server's memory (the
//! resident set of this process, where the server runs, sampled every 2 ms),
//! and `/health/live` answering within 100 ms throughout.
//!
//! `#[sqlx::test]` runs the server on a current-thread runtime: one thread
//! serves every request, so anything the server ran inline would stall the
//! health probe for as long as it ran. The attacker and the probe each run on
//! a thread and runtime of their own, so that what the probe measures is the
//! server. The tests take a lock so that one runs at a time and the memory
//! figures are their own.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`;
//! `-- --nocapture` prints the figures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use tasker_api::keys::{self, Permission};
use tasker_testkit::{migrated, Stack, DIAMOND_YAML};

/// One test at a time: the memory figures are the process's.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Longest `/health/live` answer accepted during an attack.
const HEALTH_WITHIN: Duration = Duration::from_millis(100);

struct Server {
    target: Target,
    admin: String,
    reader: String,
    _stack: Stack,
}

/// Where requests go, and a client for one runtime (a connection belongs to
/// the runtime that opened it).
#[derive(Clone)]
struct Target {
    base: String,
    http: Client,
}

/// One request of an attack: path, key, whether the body is YAML, body.
type Request = (&'static str, String, bool, String);

impl Server {
    /// The API with an orchestrator in the same process (as `tasker server`
    /// runs them), an admin key and a read-only key.
    async fn start(pool: &PgPool) -> Server {
        migrated(pool).await;
        let stack = Stack::builder(pool).workers(0).api().start().await;
        let (_, admin) = keys::create_key(pool, &keys::KeySpec::new("admin", &[Permission::Admin]))
            .await
            .unwrap();
        let (_, reader) = keys::create_key(
            pool,
            &keys::KeySpec::new("reader", &[Permission::TasksRead]),
        )
        .await
        .unwrap();
        Server {
            target: Target {
                base: stack.base_url(),
                http: Client::new(),
            },
            admin,
            reader,
            _stack: stack,
        }
    }

    /// Sends `requests` at once from a thread and runtime of their own; the
    /// answers in order.
    async fn attack(&self, requests: Vec<Request>) -> Vec<(StatusCode, Value)> {
        // A client of its own: a connection belongs to the runtime that opened it.
        let target = Target {
            base: self.target.base.clone(),
            http: Client::new(),
        };
        on_own_thread(async move {
            futures::future::join_all(requests.into_iter().map(|(path, key, yaml, body)| {
                let target = target.clone();
                async move { target.post(path, &key, yaml, body).await }
            }))
            .await
        })
        .await
    }

    async fn post(&self, path: &str, key: &str, yaml: bool, body: String) -> (StatusCode, Value) {
        self.target.post(path, key, yaml, body).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self
            .target
            .http
            .get(format!("{}{path}", self.target.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap())
    }
}

impl Target {
    /// POSTs `body` (YAML or JSON) with `key`; the status and the JSON answer.
    async fn post(&self, path: &str, key: &str, yaml: bool, body: String) -> (StatusCode, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header(
                "content-type",
                if yaml {
                    "application/yaml"
                } else {
                    "application/json"
                },
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap())
    }
}

/// Runs `work` to its end on a new thread with a runtime of its own.
async fn on_own_thread<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    });
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap()
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Watches the server during an attack: its memory on an OS thread, and
/// `/health/live` on the runtime, every request timed.
struct Watch {
    name: &'static str,
    stop: Arc<AtomicBool>,
    rss: std::thread::JoinHandle<u64>,
    health: std::thread::JoinHandle<(Duration, usize)>,
    before_kib: u64,
    started: Instant,
}

/// What a [`Watch`] saw.
#[derive(Debug)]
struct Seen {
    elapsed: Duration,
    before_kib: u64,
    peak_kib: u64,
    slowest_health: Duration,
    probes: usize,
}

impl Seen {
    fn growth_mib(&self) -> f64 {
        self.peak_kib.saturating_sub(self.before_kib) as f64 / 1024.0
    }
}

impl Watch {
    async fn start(name: &'static str, server: &Server) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let before_kib = rss_kib();
        let rss = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = rss_kib();
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(rss_kib());
                    std::thread::sleep(Duration::from_millis(2));
                }
                peak.max(rss_kib())
            })
        };
        let health = {
            let stop = stop.clone();
            let (http, url) = (Client::new(), format!("{}/health/live", server.target.base));
            std::thread::spawn(move || {
                let probe = async move {
                    let (mut slowest, mut probes) = (Duration::ZERO, 0);
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let res = http.get(&url).send().await.unwrap();
                        assert_eq!(res.status(), StatusCode::OK);
                        slowest = slowest.max(sent.elapsed());
                        probes += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    (slowest, probes)
                };
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(probe)
            })
        };
        // The first probe has answered: the connection is open.
        tokio::time::sleep(Duration::from_millis(30)).await;
        Watch {
            name,
            stop,
            rss,
            health,
            before_kib,
            started: Instant::now(),
        }
    }

    /// Stops watching and checks the health probe: it ran, and every answer
    /// came within [`HEALTH_WITHIN`].
    async fn finish(self) -> Seen {
        let elapsed = self.started.elapsed();
        // Let a probe run after the attack too.
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.stop.store(true, Ordering::Relaxed);
        let (health, rss) = (self.health, self.rss);
        let ((slowest_health, probes), peak_kib) =
            tokio::task::spawn_blocking(move || (health.join().unwrap(), rss.join().unwrap()))
                .await
                .unwrap();
        let seen = Seen {
            elapsed,
            before_kib: self.before_kib,
            peak_kib,
            slowest_health,
            probes,
        };
        eprintln!(
            "{}: {:?}; RSS {} KiB before, {} KiB peak (+{:.1} MiB), {} KiB after; \
             /health/live slowest {:?} over {} probes",
            self.name,
            seen.elapsed,
            seen.before_kib,
            seen.peak_kib,
            seen.growth_mib(),
            rss_kib(),
            seen.slowest_health,
            seen.probes
        );
        assert!(
            seen.probes >= 2,
            "{}: the health probe ran: {seen:?}",
            self.name
        );
        assert!(
            seen.slowest_health < HEALTH_WITHIN,
            "{}: /health/live took {:?} during the attack",
            self.name,
            seen.slowest_health
        );
        seen
    }
}

/// Asserts a 422 naming `limit` in `details.limit` and in the message.
fn refused(answer: &(StatusCode, Value), limit: &str) {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["details"]["limit"], json!(limit), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(limit), "{message}");
}

const HEADER: &str = "namespace: hostile\nname: t\nversion: 1.0.0\n";

/// A template whose `description` is a `size`-byte string anchored once and
/// whose `steps` refer to it `refs` times.
fn alias_bomb(size: usize, refs: usize) -> String {
    format!(
        "{HEADER}description: &big \"{}\"\nsteps: [{}]\n",
        "x".repeat(size),
        vec!["*big"; refs].join(", ")
    )
}

fn billion_laughs() -> String {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text
}

/// HIGH: a YAML alias bomb with a read-only key. The finding's body (a 1 MiB
/// string referred to 1,024 times) reached 1.13 GB; 6,000 references aborted
/// the process.
#[sqlx::test(migrations = false)]
async fn yaml_alias_bombs_are_refused_without_expanding(pool: PgPool) {
    let _one = SERIAL.lock().await;
    let server = Server::start(&pool).await;
    let finding = alias_bomb(1 << 20, 1_024);
    let within_size = alias_bomb(512 << 10, 1_000);
    let many = alias_bomb(100, 6_000);
    let laughs = billion_laughs();

    let (reader, admin) = (server.reader.clone(), server.admin.clone());
    let validate = "/v1/templates/validate";
    let requests: Vec<Request> = vec![
        (validate, reader.clone(), true, finding),
        (validate, reader.clone(), true, within_size.clone()),
        (validate, reader.clone(), true, within_size.clone()),
        ("/v1/templates", admin.clone(), true, within_size),
        (validate, reader.clone(), true, many),
        (validate, reader, true, laughs.clone()),
        ("/v1/templates", admin, true, laughs),
    ];

    let watch = Watch::start("alias bombs", &server).await;
    let answers = server.attack(requests).await;
    let seen = watch.finish().await;

    refused(&answers[0], "templates.max_bytes");
    for answer in &answers[1..4] {
        refused(answer, "templates.max_expanded_bytes");
    }
    refused(&answers[4], "templates.max_aliases");
    refused(&answers[5], "templates.max_expanded_bytes");
    refused(&answers[6], "templates.max_expanded_bytes");
    assert!(seen.elapsed < Duration::from_secs(5), "{seen:?}");
    // Seven bodies of up to 1 MiB are in flight at once (each held by the
    // client and the server); expanded, the second alone would be 500 MiB.
    assert!(seen.growth_mib() < 64.0, "{seen:?}");

    // Aliases within the limits still work.
    let shared = format!(
        "{HEADER}steps:\n  - name: a\n    handler: {{ name: h }}\n    retry: &r {{ max_attempts: 5 }}\n  - name: b\n    handler: {{ name: h }}\n    retry: *r\n"
    );
    let (status, body) = server
        .post("/v1/templates", &server.admin, true, shared)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// HIGH: deeply nested YAML cost quadratic CPU on the async runtime (150k
/// levels: 49 s; two at once froze `/health/live` for 21 s).
#[sqlx::test(migrations = false)]
async fn deep_nesting_is_refused_off_the_runtime_in_linear_time(pool: PgPool) {
    let _one = SERIAL.lock().await;
    let server = Server::start(&pool).await;
    let flow = format!("{}{}", "[".repeat(150_000), "]".repeat(150_000));
    let flow_map = format!("{}1{}", "{a: ".repeat(100_000), "}".repeat(100_000));
    let block = "- ".repeat(200_000) + "x\n";
    let json = format!("{}{}", "[".repeat(150_000), "]".repeat(150_000));

    let (reader, admin) = (server.reader.clone(), server.admin.clone());
    let validate = "/v1/templates/validate";
    let requests: Vec<Request> = vec![
        (validate, reader.clone(), true, flow.clone()),
        (validate, reader.clone(), true, flow.clone()),
        (validate, reader.clone(), true, flow_map),
        (validate, reader.clone(), true, block),
        (validate, reader.clone(), false, json),
        ("/v1/templates", admin, true, flow),
        // An honest template is served meanwhile.
        (validate, reader, true, DIAMOND_YAML.to_string()),
    ];

    let watch = Watch::start("deep nesting", &server).await;
    let answers = server.attack(requests).await;
    let seen = watch.finish().await;

    for answer in &answers[..6] {
        refused(answer, "templates.max_depth");
    }
    assert_eq!(answers[6].0, StatusCode::OK, "{}", answers[6].1);
    assert!(seen.elapsed < Duration::from_secs(3), "{seen:?}");
    assert!(seen.growth_mib() < 64.0, "{seen:?}");
}

/// `steps` names steps `s0..s{n}`, each depending on every earlier one:
/// n(n-1)/2 edges.
fn dense(n: usize, name: &str) -> String {
    let mut text = format!("namespace: hostile\nname: {name}\nversion: 1.0.0\nsteps:\n");
    for i in 0..n {
        let deps: Vec<String> = (0..i).map(|j| format!("s{j}")).collect();
        text.push_str(&format!(
            "  - {{ name: s{i}, handler: {{ name: h }}, depends_on: [{}] }}\n",
            deps.join(", ")
        ));
    }
    text
}

/// LOW: dense templates amplified writes (800 steps each depending on all
/// earlier ones: every 43-byte task creation wrote 320k edge rows in 4.9 s).
#[sqlx::test(migrations = false)]
async fn dense_templates_are_capped_and_tasks_write_bounded_edges(pool: PgPool) {
    let _one = SERIAL.lock().await;
    let server = Server::start(&pool).await;
    let admin = server.admin.as_str();
    // The finding's template, as JSON (its YAML alone is over max_bytes).
    let finding = dense_json(800).to_string(); // 3.4 MB
    let edges_over = dense(320, "edges"); // 51,040 edges in 300 KB
    let mut steps_over = String::from("namespace: hostile\nname: steps\nversion: 1.0.0\nsteps:\n");
    for i in 0..1_001 {
        steps_over.push_str(&format!("  - {{ name: s{i}, handler: {{ name: h }} }}\n"));
    }
    let at_caps = dense(100, "at_caps"); // 4,950 edges
    let task = json!({"namespace": "hostile", "name": "at_caps"}).to_string();

    let requests: Vec<Request> = vec![
        ("/v1/templates", server.admin.clone(), false, finding),
        ("/v1/templates", server.admin.clone(), true, edges_over),
        ("/v1/templates", server.admin.clone(), true, steps_over),
    ];

    let watch = Watch::start("dense templates", &server).await;
    let answers = server.attack(requests).await;
    let (status, body) = server.post("/v1/templates", admin, true, at_caps).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created = Instant::now();
    let (status, body) = server.post("/v1/tasks", admin, false, task).await;
    let creation = created.elapsed();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let seen = watch.finish().await;

    refused(&answers[0], "templates.max_bytes");
    refused(&answers[1], "templates.max_edges");
    refused(&answers[2], "templates.max_steps");
    let task_id: uuid::Uuid = body["task_id"].as_str().unwrap().parse().unwrap();
    let edges: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasker.step_edges WHERE task_id = $1")
            .bind(task_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    eprintln!("a task of the largest dense template: {edges} edges written in {creation:?}");
    assert_eq!(edges, 4_950);
    assert!(creation < Duration::from_secs(3), "{creation:?}");
    assert!(seen.elapsed < Duration::from_secs(8), "{seen:?}");
    assert!(seen.growth_mib() < 96.0, "{seen:?}");
}

/// The finding's dense template (800 steps) as a JSON value.
fn dense_json(n: usize) -> Value {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let deps: Vec<String> = (0..i).map(|j| format!("s{j}")).collect();
            json!({"name": format!("s{i}"), "handler": {"name": "h"}, "depends_on": deps})
        })
        .collect();
    json!({"namespace": "hostile", "name": "finding", "version": "1.0.0", "steps": steps})
}

/// LOW: out-of-range dates gave 500 (`created_after=-99999-01-01T00:00:00Z`,
/// analytics `since`).
#[sqlx::test(migrations = false)]
async fn out_of_range_dates_are_422_naming_the_parameter(pool: PgPool) {
    let _one = SERIAL.lock().await;
    let server = Server::start(&pool).await;
    let watch = Watch::start("dates", &server).await;
    let cases = [
        (
            "/v1/tasks?created_after=-99999-01-01T00:00:00Z",
            "created_after",
        ),
        (
            "/v1/tasks?created_before=%2B99999-01-01T00:00:00Z",
            "created_before",
        ),
        (
            "/v1/tasks?created_after=-0001-12-31T23:59:59Z",
            "created_after",
        ),
        (
            "/v1/tasks?created_after=2030-01-01T00:00:00Z&created_before=2020-01-01T00:00:00Z",
            "created_after",
        ),
        ("/v1/analytics?since=-99999-01-01T00:00:00Z", "since"),
        ("/v1/analytics?since=-4714-11-24T00:00:00Z", "since"),
    ];
    for (path, field) in cases {
        let (status, body) = server.get(path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["details"]["field"], json!(field), "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().starts_with(field),
            "{path}: {body}"
        );
    }
    for path in [
        "/v1/tasks?created_after=0000-01-01T00:00:00Z&created_before=9999-12-31T23:59:59Z",
        "/v1/tasks?created_after=2020-01-01T00:00:00Z&created_before=2020-01-01T00:00:00Z",
        "/v1/analytics?since=0000-01-01T00:00:00Z",
    ] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let seen = watch.finish().await;
    assert!(seen.elapsed < Duration::from_secs(3), "{seen:?}");
}
