//! The polyglot example (`examples/polyglot/`) as separate processes: one
//! template in one namespace whose steps run in five runtimes — WASM
//! components from Rust, Python, JavaScript and C in a `tasker worker --pool
//! wasm`, a native Python handler (`worker.py`), a native Ruby handler
//! (`worker.rb`) and a native C handler (`worker.c` on libtasker) — each
//! runtime's worker its own process, next to a `tasker server`.
//!
//! Ignored by default: it needs the Python package, the Ruby extension and the
//! C worker built. `scripts/test-polyglot.sh` builds them and runs it:
//!
//! ```sh
//! POLYGLOT_PYTHON=<python with `tasker`> POLYGLOT_RUBY_LIB=<dir for ruby -I> \
//! POLYGLOT_C_WORKER=<the built worker.c> \
//!   cargo test -p tasker-tests --test polyglot -- --ignored --nocapture
//! ```
//!
//! (Not `TASKER_*` names: every `TASKER_*` variable is a configuration key to
//! the `tasker` processes, which refuse unknown ones.)

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use tasker_model::state::TaskState;
use tasker_notify::watch::TaskWatcher;
use tasker_notify::Wakeups;
use tasker_store as store;
use tasker_store::template::TemplateCache;
use tasker_testkit::{eventually, migrated, new_task, repo_root, steps, wasm_examples_dir};
use uuid::Uuid;

mod common;
use common::{db_url, free_port, tasker_bin};

const NAMESPACE: &str = "polyglot";
const TEMPLATE: &str = "order_pricing";
/// The worker registry's heartbeat in this test (seconds); gone after three missed.
const REGISTRY_HEARTBEAT: u64 = 1;
/// Configuration of the native workers (the bindings take TOML, not
/// `TASKER_*` variables): the test environment's lease and polling, a 1 s
/// registry heartbeat.
const NATIVE_CONFIG: &str =
    "[worker]\nregistry_heartbeat_seconds = 1\nheartbeat_interval_seconds = 2\n\
                             shutdown_grace_seconds = 5\nconcurrency = 4\n\
                             [queues]\nvisibility_timeout_seconds = 5\npoll_interval_ms = 50\n\
                             [database]\nmax_connections = 10\n";

/// What scripts/test-polyglot.sh prepares: (variable, what it names).
const PREPARED: [(&str, &str); 3] = [
    (
        "POLYGLOT_PYTHON",
        "a Python interpreter with the `tasker` package",
    ),
    (
        "POLYGLOT_RUBY_LIB",
        "a directory holding tasker.rb and its compiled extension (for `ruby -I`)",
    ),
    (
        "POLYGLOT_C_WORKER",
        "the C worker built from examples/polyglot/worker.c",
    ),
];

/// The WASM components the template names: (name, file).
const COMPONENTS: [(&str, &str); 4] = [
    ("poly.math_rust", "math_rust.wasm"),
    ("poly.math_py", "math_py.wasm"),
    ("poly.math_js", "math_js.wasm"),
    ("poly.math_c", "math_c.wasm"),
];

/// The steps in DAG order, with the `lang` each one's result must carry (who ran it).
const STEPS: [(&str, &str); 7] = [
    ("subtotal", "python"),
    ("shipping", "ruby"),
    ("pre_tax", "rust"),
    ("tax", "c"),
    ("total", "python"),
    ("points", "javascript"),
    ("charged", "c"),
];

// ------------------------------------------------------------ the example

/// Order `i`: 1-3 lines, a destination and its tax rate.
fn order(i: u64) -> Value {
    const PLACES: [(&str, i64); 5] = [
        ("US", 825),
        ("CA", 1300),
        ("DE", 1900),
        ("MX", 1600),
        ("JP", 1000),
    ];
    let (country, tax_bp) = PLACES[(i % 5) as usize];
    let items: Vec<Value> = (0..1 + i % 3)
        .map(|j| {
            json!({
                "sku": format!("SKU-{}", (i * 31 + j * 7) % 97),
                "qty": 1 + (i * 7 + j * 3) % 5,
                "unit_cents": 99 + (i * 7919 + j * 104_729) % 25_000,
            })
        })
        .collect();
    json!({ "order_id": format!("A-{:04}", 1000 + i), "country": country, "tax_bp": tax_bp, "items": items })
}

/// What every step of `order` must result in (integer cents), computed here
/// by the rules the handlers implement (`examples/polyglot/README.md`).
fn expected(order: &Value) -> BTreeMap<&'static str, i64> {
    let items = order["items"].as_array().unwrap();
    let qty: i64 = items.iter().map(|i| i["qty"].as_i64().unwrap()).sum();
    let subtotal: i64 = items
        .iter()
        .map(|i| i["qty"].as_i64().unwrap() * i["unit_cents"].as_i64().unwrap())
        .sum();
    let (base, per_item) = match order["country"].as_str().unwrap() {
        "US" => (500, 150),
        "CA" | "MX" => (1200, 250),
        _ => (2500, 400),
    };
    let shipping = base + per_item * qty;
    let pre_tax = subtotal + shipping;
    let tax = (pre_tax * order["tax_bp"].as_i64().unwrap() + 5000) / 10000;
    let total = pre_tax + tax;
    BTreeMap::from([
        ("subtotal", subtotal),
        ("shipping", shipping),
        ("pre_tax", pre_tax),
        ("tax", tax),
        ("total", total),
        ("points", total * 2),
        ("charged", total + 30),
    ])
}

/// Asserts that every step of `task` (order `input`) completed once with its
/// exact value, computed by the runtime the template sends it to.
async fn assert_priced(pool: &PgPool, task: Uuid, input: &Value) {
    let want = expected(input);
    let got = steps(pool, task).await;
    for (name, lang) in STEPS {
        let s = &got[name];
        assert_eq!(s.state, "complete", "task {task} step {name}: {s:?}");
        assert_eq!(s.attempts, 1, "task {task} step {name}: {s:?}");
        let result = s.result.as_ref().expect("a result");
        assert_eq!(
            result["value"],
            json!(want[name]),
            "task {task} ({input}) step {name}: {result}"
        );
        assert_eq!(result["lang"], lang, "task {task} step {name}: {result}");
    }
}

// ------------------------------------------------------------ processes

/// Where a prepared piece is (set by scripts/test-polyglot.sh): fails loudly without it.
fn required(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: it names {what}. This test needs the Python package, the Ruby \
             extension and the C worker built: run scripts/test-polyglot.sh"
        ),
    }
}

/// A child process, killed when dropped.
struct Proc {
    child: Child,
    what: &'static str,
}

impl Proc {
    fn spawn(what: &'static str, mut command: Command) -> Proc {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {what}: {e} ({command:?})"));
        Proc { child, what }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {} ({})", self.child.id(), self.what);
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails the test if the process has exited (it should serve until killed).
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the {} exited early: {status}", self.what);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes of the test and how to start them.
struct Cluster {
    db: String,
    api: String,
    bind: String,
    key: String,
}

impl Cluster {
    fn tasker(&self, args: &[&str]) -> Command {
        let mut c = Command::new(tasker_bin());
        c.args(args)
            .env("TASKER_ENV", "test")
            .env("TASKER_DATABASE__URL", &self.db)
            .env("TASKER_CLIENT__URL", &self.api)
            .env("TASKER_CLIENT__API_KEY", &self.key)
            .env("TASKER_WEB__BIND", &self.bind)
            .env(
                "TASKER_WORKER__REGISTRY_HEARTBEAT_SECONDS",
                REGISTRY_HEARTBEAT.to_string(),
            )
            .env_remove("DATABASE_URL");
        c
    }

    /// Runs `tasker args`, returning stdout; fails with its stderr.
    fn cli(&self, args: &[&str]) -> String {
        let out = self.tasker(args).output().expect("run tasker");
        assert!(
            out.status.success(),
            "tasker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn native(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("DATABASE_URL", &self.db)
            .env("POLYGLOT_WORKER_CONFIG", NATIVE_CONFIG);
        c
    }

    fn server(&self) -> Proc {
        let mut c = self.tasker(&["server"]);
        // A debug build compiles the 12-18 MB Python and JavaScript guests
        // at upload for a while (longer than the default 30 s limit on a
        // loaded 2-core machine).
        c.env("TASKER_WEB__REQUEST_TIMEOUT_MS", "180000");
        Proc::spawn("tasker server", c)
    }

    fn wasm_worker(&self) -> Proc {
        Proc::spawn(
            "WASM worker (tasker worker --pool wasm)",
            self.tasker(&["worker", "--namespace", NAMESPACE, "--pool", "wasm"]),
        )
    }

    fn python_worker(&self) -> Proc {
        let mut c = self.native(&required(PREPARED[0].0, PREPARED[0].1));
        c.arg(repo_root().join("examples/polyglot/worker.py"));
        Proc::spawn("Python worker", c)
    }

    fn ruby_worker(&self) -> Proc {
        let lib = required(PREPARED[1].0, PREPARED[1].1);
        let mut c = self.native("ruby");
        c.args(["-I", &lib])
            .arg(repo_root().join("examples/polyglot/worker.rb"));
        Proc::spawn("Ruby worker", c)
    }

    fn c_worker(&self) -> Proc {
        Proc::spawn(
            "C worker",
            self.native(&required(PREPARED[2].0, PREPARED[2].1)),
        )
    }

    /// `tasker worker list --all --json`: the registry's rows by pid.
    fn registry(&self) -> BTreeMap<i64, Value> {
        let list: Value =
            serde_json::from_str(&self.cli(&["worker", "list", "--all", "--json"])).unwrap();
        list["workers"]
            .as_array()
            .expect("workers")
            .iter()
            .map(|w| (w["pid"].as_i64().unwrap(), w.clone()))
            .collect()
    }
}

/// The registry status of the worker process `pid` (from the database).
async fn status_of(pool: &PgPool, pid: i32) -> Option<String> {
    store::worker::list(pool, true)
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.pid == pid)
        .max_by_key(|w| w.started_at)
        .map(|w| w.status)
}

/// Creates a task for `input` through the store and announces it.
async fn create(wakeups: &Wakeups, cache: &TemplateCache, input: &Value) -> Uuid {
    let (created, changed) = store::task::create(
        wakeups.pool(),
        cache,
        &new_task(NAMESPACE, TEMPLATE, input.clone()),
        "polyglot-test",
    )
    .await
    .unwrap();
    wakeups.announce(&changed);
    created.task_id
}

async fn wait_complete(
    watcher: &TaskWatcher,
    pool: &PgPool,
    tasks: &[(Uuid, Value)],
    within: Duration,
) {
    let deadline = Instant::now() + within;
    for (id, _) in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        let state = watcher.wait(*id, left).await;
        assert!(
            matches!(state, Ok(TaskState::Complete)),
            "task {id} did not complete in {within:?}: {state:?}\n{:#?}",
            steps(pool, *id).await
        );
    }
}

// ------------------------------------------------------------ the test

/// One template, one namespace, five runtimes in four worker processes (plus
/// the server): 100 orders complete with exact amounts; the registry lists
/// every runtime's worker with its handlers; a SIGKILLed Ruby worker turns
/// `gone` within three registry heartbeats and stalls only the Ruby step
/// (orders past it finish, new ones wait at `shipping` while their other
/// steps run), and everything finishes once it is back.
#[sqlx::test(migrations = false)]
#[ignore = "needs the Python package, the Ruby extension and the C worker built: scripts/test-polyglot.sh"]
async fn five_runtimes_price_orders_and_a_killed_ruby_worker_stalls_only_its_steps(pool: PgPool) {
    let started = Instant::now();
    let phase = |what: &str| {
        eprintln!(
            "polyglot [{:5.1} s] {what}",
            started.elapsed().as_secs_f64()
        )
    };
    // Fail before starting anything when a piece is missing.
    for (var, what) in PREPARED {
        required(var, what);
    }
    for (_, file) in COMPONENTS {
        let path = wasm_examples_dir().join(file);
        assert!(
            path.exists(),
            "{} is missing: build the guests with scripts/build-wasm-examples.sh",
            path.display()
        );
    }
    migrated(&pool).await;
    let port = free_port();
    let mut cluster = Cluster {
        db: db_url(&pool),
        api: format!("http://127.0.0.1:{port}"),
        bind: format!("127.0.0.1:{port}"),
        key: String::new(),
    };
    let key_out = cluster.cli(&["apikey", "create", "polyglot", "--permissions", "admin"]);
    cluster.key = key_out
        .lines()
        .find(|l| l.starts_with("tk_"))
        .expect("an API key")
        .to_string();

    let mut server = cluster.server();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        server.assert_running();
        assert!(
            Instant::now() < deadline,
            "the API never came up on {}",
            cluster.api
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (name, file) in COMPONENTS {
        let path = wasm_examples_dir().join(file);
        let out = cluster.cli(&[
            "component",
            "upload",
            path.to_str().unwrap(),
            "--name",
            name,
            "--version",
            "1.0.0",
        ]);
        assert!(out.starts_with(&format!("uploaded {name}@1.0.0")), "{out}");
        phase(&format!("uploaded {name}"));
    }
    phase("server up, components uploaded; starting the workers");

    let mut wasm = cluster.wasm_worker();
    let mut python = cluster.python_worker();
    let mut ruby = cluster.ruby_worker();
    let mut c = cluster.c_worker();
    let live = eventually(Duration::from_secs(60), || async {
        let workers = store::worker::list(&pool, false).await.unwrap();
        [&wasm, &python, &ruby, &c].iter().all(|p| {
            workers
                .iter()
                .any(|w| w.pid == p.pid() && w.status == "live")
        })
    })
    .await;
    for p in [&mut server, &mut wasm, &mut python, &mut ruby, &mut c] {
        p.assert_running();
    }
    assert!(
        live,
        "not every worker registered: {:#?}",
        cluster.registry()
    );

    // `tasker worker list`: every runtime's worker, its pools and handlers.
    let registry = cluster.registry();
    let row = |p: &Proc| {
        registry
            .get(&(p.pid() as i64))
            .unwrap_or_else(|| panic!("the {} (pid {}) is not in {registry:#?}", p.what, p.pid()))
            .clone()
    };
    let w = row(&wasm);
    assert_eq!(
        (w["status"].as_str(), w["runtime"].as_str()),
        (Some("live"), Some("rust")),
        "{w}"
    );
    assert_eq!(w["runs_components"], true, "{w}");
    assert!(
        w["pools"].as_array().unwrap().contains(&json!("wasm")),
        "`tasker worker --pool wasm` does not serve pool wasm: {w}"
    );
    for (p, runtime, pool_name, handler) in [
        (&python, "python", "python", "order.subtotal"),
        (&ruby, "ruby", "ruby", "order.shipping"),
        (&c, "c", "c", "order.tax"),
    ] {
        let w = row(p);
        assert_eq!(w["status"], "live", "{w}");
        assert_eq!(w["runtime"], runtime, "{}: {w}", p.what);
        assert!(
            w["pools"].as_array().unwrap().contains(&json!(pool_name)),
            "{w}"
        );
        assert_eq!(w["handlers"], json!([handler]), "{w}");
        assert_eq!(w["runs_components"], false, "{w}");
        assert_eq!(w["heartbeat_seconds"], REGISTRY_HEARTBEAT, "{w}");
    }
    let table = cluster.cli(&["worker", "list"]);
    for word in [
        "rust",
        "python",
        "ruby",
        "order.subtotal",
        "order.shipping",
        "order.tax",
        "WASM components",
    ] {
        assert!(
            table.contains(word),
            "`tasker worker list` lacks {word}:\n{table}"
        );
    }
    eprintln!("{table}");

    // The example template, through the API: every step has a live worker.
    let template = repo_root().join("examples/polyglot/order_pricing.yaml");
    let applied: Value = serde_json::from_str(&cluster.cli(&[
        "template",
        "apply",
        template.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        applied[0]["key"], "polyglot/order_pricing/1.0.0",
        "{applied}"
    );
    assert!(
        applied[0].get("unserved").is_none(),
        "steps without a live worker: {applied}"
    );

    // 1. 100 orders, all five runtimes alive: all complete, exact.
    phase("100 orders");
    let wakeups = Wakeups::new(&pool);
    let watcher = TaskWatcher::start(&wakeups).await.unwrap();
    let cache = TemplateCache::default();
    let mut first = Vec::new();
    for i in 0..100 {
        let input = order(i);
        first.push((create(&wakeups, &cache, &input).await, input));
    }
    wait_complete(&watcher, &pool, &first, Duration::from_secs(90)).await;
    for (id, input) in &first {
        assert_priced(&pool, *id, input).await;
    }
    phase("100 orders complete, exact");

    // 2. Orders past their Ruby step keep going without it: pause the WASM
    // worker so that 20 orders stop after `subtotal` and `shipping`, kill
    // the Ruby worker, resume the WASM worker.
    wasm.signal("STOP");
    let mut past_ruby = Vec::new();
    for i in 100..120 {
        let input = order(i);
        past_ruby.push((create(&wakeups, &cache, &input).await, input));
    }
    let shipped = eventually(Duration::from_secs(30), || async {
        for (id, _) in &past_ruby {
            let s = steps(&pool, *id).await;
            if s["subtotal"].state != "complete" || s["shipping"].state != "complete" {
                return false;
            }
        }
        true
    })
    .await;
    assert!(shipped, "the 20 orders' native root steps did not finish");
    let ruby_pid = ruby.pid();
    ruby.sigkill();
    let killed_at = Instant::now();
    phase("Ruby worker SIGKILLed");
    wasm.signal("CONT");

    // New orders now wait at `shipping`; their `subtotal` (Python) still runs.
    let mut stalled = Vec::new();
    for i in 120..140 {
        let input = order(i);
        stalled.push((create(&wakeups, &cache, &input).await, input));
    }
    // The killed worker turns gone within three registry heartbeats.
    let gone = eventually(Duration::from_secs(10), || async {
        status_of(&pool, ruby_pid).await.as_deref() == Some("gone")
    })
    .await;
    let gone_after = killed_at.elapsed();
    assert!(
        gone,
        "the killed Ruby worker never turned gone: {:#?}",
        cluster.registry()
    );
    assert!(
        gone_after <= Duration::from_millis(3 * REGISTRY_HEARTBEAT * 1000 + 1000),
        "the killed Ruby worker turned gone after {gone_after:?} (heartbeat {REGISTRY_HEARTBEAT} s)"
    );
    let registry = cluster.registry();
    assert_eq!(
        registry[&(ruby_pid as i64)]["status"],
        "gone",
        "{registry:#?}"
    );
    for p in [&wasm, &python, &c] {
        assert_eq!(
            registry[&(p.pid() as i64)]["status"],
            "live",
            "{}: {registry:#?}",
            p.what
        );
    }
    phase(&format!(
        "Ruby worker gone after {:.1} s",
        gone_after.as_secs_f64()
    ));

    wait_complete(&watcher, &pool, &past_ruby, Duration::from_secs(60)).await;
    for (id, input) in &past_ruby {
        assert_priced(&pool, *id, input).await;
    }
    phase("the 20 orders past their Ruby step complete without it");
    let subtotals = eventually(Duration::from_secs(30), || async {
        for (id, _) in &stalled {
            if steps(&pool, *id).await["subtotal"].state != "complete" {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        subtotals,
        "the new orders' Python step did not run while Ruby was away"
    );
    // Give a wrongly delivered `shipping` every chance to show: a second more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (id, _) in &stalled {
        let s = steps(&pool, *id).await;
        let shipping = &s["shipping"];
        assert_eq!(
            (shipping.state.as_str(), shipping.attempts),
            ("enqueued", 0),
            "task {id}: shipping should wait for a Ruby worker, spending no attempt: {shipping:?}"
        );
        assert!(shipping.last_error.is_none(), "task {id}: {shipping:?}");
        for name in ["pre_tax", "tax", "total", "points", "charged"] {
            assert_eq!(
                s[name].state, "pending",
                "task {id} step {name}: {:?}",
                s[name]
            );
        }
        let state = store::task::detail(&pool, *id).await.unwrap().task.state;
        assert!(
            !["complete", "error", "blocked_by_failures", "cancelled"].contains(&state.as_str()),
            "task {id} should wait for its Ruby step: {state}"
        );
    }
    phase("20 new orders wait at shipping, nothing failed");

    // 3. The Ruby worker is back: the waiting orders finish.
    let mut ruby = cluster.ruby_worker();
    wait_complete(&watcher, &pool, &stalled, Duration::from_secs(60)).await;
    for (id, input) in &stalled {
        assert_priced(&pool, *id, input).await;
    }
    let registry = cluster.registry();
    assert_eq!(
        registry[&(ruby.pid() as i64)]["status"],
        "live",
        "{registry:#?}"
    );
    for p in [&mut server, &mut wasm, &mut python, &mut ruby, &mut c] {
        p.assert_running();
    }
    // No step anywhere failed or ran twice.
    let (failed, reran): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE last_error IS NOT NULL), count(*) FILTER (WHERE attempts <> 1)
           FROM tasker.steps",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((failed, reran), (0, 0), "steps failed / ran more than once");
    phase("the Ruby worker is back: all 140 orders complete, exact");
}
