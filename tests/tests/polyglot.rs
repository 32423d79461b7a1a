//! The polyglot example (`examples/polyglot/`) as separate processes: one
//! template in one namespace whose steps run in five runtimes — WASM
//! components from Rust, Python, JavaScript and C in a `tasker worker --pool
//! wasm`, a native Python handler (`worker.py`), a native Ruby handler
//! (`worker.rb`), a native C handler (`worker.c` on libtasker) and a native
//! Rust ones (the examples `math.compute` and `ecommerce.charge_payment` in
//! `tasker worker`) —
//! each runtime's worker its own process, next to a `tasker server`. After
//! the first orders, `tasker step logs` shows what each runtime's handler
//! logged (`polyglot/logs.rs`).
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

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use tasker_notify::watch::TaskWatcher;
use tasker_notify::Wakeups;
use tasker_store as store;
use tasker_store::template::TemplateCache;
use tasker_testkit::{eventually, migrated, repo_root, steps, wasm_examples_dir};

mod common;
use common::{db_url, free_port};
#[path = "polyglot/example.rs"]
mod example;
#[path = "polyglot/logs.rs"]
mod logs;
#[path = "polyglot/processes.rs"]
mod processes;
use example::{assert_priced, order};
use processes::{create, required, status_of, wait_complete, Cluster, Proc};

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
    // What each runtime's handler logged, through `tasker step logs`.
    logs::assert_logged(&|args| cluster.cli(args), first[0].0).await;
    phase("`tasker step logs` shows the lines of the Python, Ruby, C, WASM and Rust handlers");

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
        for name in [
            "pre_tax",
            "tax",
            "total",
            "points",
            "charged",
            "validate_order",
            "payment",
        ] {
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
