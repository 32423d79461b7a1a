//! The operator dashboard (`/ui`) in a real browser: headless Chromium,
//! driven over WebDriver, against a `tasker server` and a `tasker worker`
//! started as processes on a fresh database.
//!
//! Signs in; creates tasks from the page; sees a task's DAG with the right
//! nodes and states; watches a running step turn complete without a reload
//! (over the event stream); retries a failed step from the page and sees it
//! succeed; signs in with a read-only key, sees no action, and has a forged
//! action refused with 403; no console errors; no request leaves the origin.
//! Saves a screenshot of each page in `target/ui-screenshots/`.
//!
//! Ignored by default (it needs Debian's `chromium` and `chromium-driver`);
//! `scripts/test-ui.sh` runs it, and fails when they are missing.

#[path = "ui_browser/mod.rs"]
mod ui_browser;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use tasker_store as store;
use tasker_store::template::TemplateCache;
use tasker_testkit::{eventually, migrated, new_task, register_inline, steps};
use ui_browser::{free_port, js_str, Browser};
use uuid::Uuid;

/// Four steps; `slow` runs long enough to be seen running.
const SLOW: &str = r#"
namespace: ui
name: slow_diamond
version: 1.0.0
description: "A diamond whose left branch takes a while."
steps:
  - { name: fetch, handler: { name: demo.sleep, config: { ms: 300 } } }
  - { name: slow, handler: { name: demo.sleep, config: { ms: 7000 } }, depends_on: [fetch] }
  - { name: quick, handler: { name: demo.sleep, config: { ms: 100 } }, depends_on: [fetch] }
  - { name: report, handler: { name: demo.sleep, config: { ms: 100 } }, depends_on: [slow, quick] }
"#;

/// `charge` fails until the input's `fail_until`, with one attempt.
const FLAKY: &str = r#"
namespace: ui
name: flaky_charge
version: 1.0.0
steps:
  - { name: prepare, handler: { name: demo.sleep, config: { ms: 100 } } }
  - { name: charge, handler: { name: demo.fail_until }, depends_on: [prepare], retry: { max_attempts: 1 } }
  - { name: ship, handler: { name: demo.sleep, config: { ms: 100 } }, depends_on: [charge] }
"#;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(20);

/// The `tasker` binary of this build.
fn tasker_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .join("tasker");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p tasker-cli` first",
        bin.display()
    );
    bin
}

/// `target/ui-screenshots`.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("target/")
        .join("ui-screenshots")
}

fn db_url(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "postgres://postgres@{}:{}/{}",
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("postgres")
    )
}

/// A `tasker` process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tasker(pool: &PgPool, port: u16, args: &[&str]) -> Command {
    let mut c = Command::new(tasker_bin());
    c.args(args)
        .env("TASKER_ENV", "test")
        .env("TASKER_DATABASE__URL", db_url(pool))
        .env("TASKER_WEB__BIND", format!("127.0.0.1:{port}"))
        .env("TASKER_WORKER__REGISTRY_HEARTBEAT_SECONDS", "1")
        .env_remove("DATABASE_URL");
    c
}

fn spawn(mut c: Command) -> Proc {
    Proc(
        c.stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tasker"),
    )
}

/// Creates a task through the store (for the list), returning its id.
async fn create_task(pool: &PgPool, name: &str, key: Option<&str>, context: Value) -> Uuid {
    let mut task = new_task("ui", name, context);
    task.idempotency_key = key.map(str::to_string);
    let (created, _) = store::task::create(pool, &TemplateCache::default(), &task, "ui-test")
        .await
        .expect("create a task");
    created.task_id
}

/// Waits until the page shows the task page and returns the task id.
async fn task_page_id(b: &Browser) -> Uuid {
    let id = b
        .wait(
            "the new task's page",
            "const m = location.hash.match(/^#\\/tasks\\/([0-9a-f-]{36})$/); \
             return m && document.querySelector('svg.dag') ? m[1] : null",
            SHORT,
        )
        .await;
    id.as_str().and_then(|s| s.parse().ok()).expect("a task id")
}

/// Waits for DAG node `step` to show `state`; fails if the page was
/// reloaded meanwhile (`window.__notReloaded` gone).
async fn wait_node(b: &Browser, step: &str, state: &str, within: Duration) {
    let script = format!(
        "if (!window.__notReloaded) return 'reloaded'; \
         const n = [...document.querySelectorAll('svg.dag g.node')].find(g => g.dataset.step === {}); \
         return n && n.dataset.state === {}",
        js_str(step),
        js_str(state)
    );
    let got = b
        .wait(&format!("step {step} {state}"), &script, within)
        .await;
    assert_eq!(
        got,
        json!(true),
        "the page was reloaded while waiting for step {step}"
    );
}

/// Counts the action buttons on the page.
async fn actions_on_page(b: &Browser) -> u64 {
    b.js("return document.querySelectorAll('[data-action]').length")
        .await
        .as_u64()
        .unwrap_or(0)
}

/// Sends `method path` from the page with the session cookie, as a forger
/// would; returns the status and the body.
async fn fetch_from_page(b: &Browser, path: &str, ui_header: bool) -> (u64, Value) {
    let headers = if ui_header {
        "{'X-Tasker-UI': '1'}"
    } else {
        "{}"
    };
    let script = format!(
        "const done = arguments[arguments.length - 1]; \
         fetch({}, {{ method: 'POST', headers: {headers} }}) \
           .then(async r => done([r.status, await r.json()])).catch(e => done([0, String(e)]));",
        js_str(path)
    );
    let v = b
        .client
        .execute_async(&script, vec![])
        .await
        .expect("fetch from the page");
    (v[0].as_u64().unwrap_or(0), v[1].clone())
}

#[sqlx::test(migrations = false)]
#[ignore = "needs Debian's chromium and chromium-driver: run scripts/test-ui.sh"]
async fn the_dashboard_in_a_real_browser(pool: PgPool) {
    let started = Instant::now();
    let phase = |what: &str| eprintln!("ui [{:5.1} s] {what}", started.elapsed().as_secs_f64());
    migrated(&pool).await;
    register_inline(&pool, SLOW).await;
    register_inline(&pool, FLAKY).await;
    let port = free_port();
    let key = |name: &str, permissions: &str| {
        let out = tasker(
            &pool,
            port,
            &["apikey", "create", name, "--permissions", permissions],
        )
        .output()
        .expect("tasker apikey create");
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .find(|l| l.starts_with("tk_"))
            .unwrap_or_else(|| panic!("no key: {}", String::from_utf8_lossy(&out.stderr)))
            .to_string()
    };
    let admin = key("operator", "admin");
    let reader = key("reader", "tasks:read");
    let _server = spawn(tasker(&pool, port, &["server"]));
    let _worker = spawn(tasker(&pool, port, &["worker", "--namespace", "ui"]));
    let up = eventually(LONG, || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && store::worker::list(&pool, false)
                .await
                .is_ok_and(|w| !w.is_empty())
    })
    .await;
    assert!(up, "the server or the worker did not come up");
    phase("server and worker up; starting the browser");
    let origin = format!("http://127.0.0.1:{port}");
    let mut b = Browser::start(&origin, screenshot_dir()).await;

    // Sign in: a wrong key is refused on the form, the bootstrap key accepted.
    b.open("#/").await;
    b.wait(
        "the sign-in form",
        "return document.getElementById('api-key')",
        SHORT,
    )
    .await;
    b.shot("01-sign-in").await;
    b.expect_error(
        "/ui/session - Failed to load resource: the server responded with a status of 401",
    );
    b.fill("#api-key", "tk_wrong_key").await;
    b.click("#sign-in").await;
    b.wait(
        "the refusal",
        "return document.getElementById('sign-in-error').textContent",
        SHORT,
    )
    .await;
    b.fill("#api-key", &admin).await;
    b.click("#sign-in").await;
    b.wait(
        "the navigation",
        "return document.querySelectorAll('#nav a').length === 6",
        SHORT,
    )
    .await;
    b.assert_no_console_errors("signing in").await;
    phase("signed in");

    // Create a task from its template's page; its page opens.
    b.open("#/templates/ui/slow_diamond/1.0.0").await;
    b.wait(
        "the template's DAG",
        "return document.querySelectorAll('svg.dag g.node').length === 4",
        SHORT,
    )
    .await;
    b.shot("03-template").await;
    b.click("button[data-action=create]").await;
    let slow_task = task_page_id(&b).await;
    b.js("window.__notReloaded = true; return 1").await;
    let nodes = b
        .js("return [...document.querySelectorAll('svg.dag g.node')].map(g => [g.dataset.step, g.dataset.state])")
        .await;
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n[0].as_str())
        .collect();
    assert_eq!(names, ["fetch", "slow", "quick", "report"], "{nodes}");
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n[1].as_str().is_some_and(|s| !s.is_empty())),
        "{nodes}"
    );
    let edges = b
        .js("return document.querySelectorAll('svg.dag path.edge').length")
        .await;
    assert_eq!(edges, json!(4));
    phase("task created from the page; its DAG has 4 nodes");

    // The slow step runs, then turns complete without a reload.
    wait_node(&b, "slow", "in_progress", SHORT).await;
    b.wait(
        "the live indicator",
        "return document.querySelector('.live.on')",
        SHORT,
    )
    .await;
    b.shot("04-task-running").await;
    wait_node(&b, "slow", "complete", LONG).await;
    wait_node(&b, "report", "complete", SHORT).await;
    b.wait(
        "the task complete",
        "return window.__notReloaded && document.querySelector('#task-state .badge').dataset.state === 'complete'",
        SHORT,
    )
    .await;
    let done = steps(&pool, slow_task).await;
    assert!(done.values().all(|s| s.state == "complete"), "{done:#?}");
    b.shot("05-task-complete").await;
    phase("the slow step turned complete live");

    // A step's page, opened from its DAG node by keyboard: its attempts and transitions.
    b.press_enter(
        "svg.dag g.node[data-step=slow]",
        "return location.hash.endsWith('/steps/slow')",
    )
    .await;
    b.wait(
        "the step page",
        "return location.hash.endsWith('/steps/slow') && document.getElementById('attempts-title')",
        SHORT,
    )
    .await;
    b.wait(
        "an attempt row",
        "return document.querySelector('section[aria-labelledby=attempts-title] tbody tr')",
        SHORT,
    )
    .await;
    b.shot("06-step").await;

    // A failing step, retried from the page once its cause is gone.
    let fail_until = chrono::Utc::now() + chrono::TimeDelta::seconds(8);
    b.open("#/templates/ui/flaky_charge/1.0.0").await;
    b.fill(
        "#task-context",
        &json!({ "fail_until": fail_until.to_rfc3339() }).to_string(),
    )
    .await;
    b.fill("#task-idempotency-key", "order-42").await;
    b.click("button[data-action=create]").await;
    let flaky_task = task_page_id(&b).await;
    b.js("window.__notReloaded = true; return 1").await;
    wait_node(&b, "charge", "error", LONG).await;
    b.wait(
        "the retry button",
        "return document.querySelector('button[data-action=retry][data-step=charge]')",
        SHORT,
    )
    .await;
    b.shot("07-task-failed").await;
    let left = (fail_until - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(500)).await;
    b.click("button[data-action=retry][data-step=charge]").await;
    wait_node(&b, "charge", "complete", LONG).await;
    wait_node(&b, "ship", "complete", SHORT).await;
    b.wait(
        "the retried task complete",
        "return document.querySelector('#task-state .badge').dataset.state === 'complete'",
        SHORT,
    )
    .await;
    assert_eq!(steps(&pool, flaky_task).await["charge"].state, "complete");
    b.shot("08-task-retried").await;
    b.open(&format!("#/tasks/{flaky_task}/steps/charge")).await;
    b.wait("two attempts", "return document.querySelectorAll('section[aria-labelledby=attempts-title] tbody tr').length === 2", SHORT).await;
    b.shot("08b-step-retried").await;
    b.assert_no_console_errors("creating, watching and retrying tasks")
        .await;
    phase("the failed step was retried from the page and succeeded");

    // More tasks for the list; one stays running for the read-only checks.
    for i in 0..3 {
        create_task(
            &pool,
            "slow_diamond",
            Some(&format!("batch-{i}")),
            json!({}),
        )
        .await;
    }
    let running = create_task(&pool, "slow_diamond", None, json!({})).await;
    b.open("#/tasks").await;
    b.wait(
        "six tasks listed",
        "return document.querySelectorAll('tbody tr[data-task]').length === 6",
        SHORT,
    )
    .await;
    b.shot("09-tasks").await;
    b.fill("#task-search", "order-42").await;
    b.click("form.search button[type=submit]").await;
    let found = b
        .wait("the search result", "const r = document.querySelectorAll('.search-results tr[data-task]'); return r.length === 1 && r[0].dataset.task", SHORT)
        .await;
    assert_eq!(found, json!(flaky_task.to_string()));
    b.open("#/tasks?state=complete").await;
    b.wait(
        "only complete tasks",
        "const r = [...document.querySelectorAll('tbody tr[data-task] .badge')]; \
         return r.length >= 2 && r.every(x => x.dataset.state === 'complete')",
        SHORT,
    )
    .await;

    // The other pages, each with a screenshot.
    b.open("#/").await;
    b.wait("the overview's charts", "return document.querySelectorAll('svg.chart').length === 3 && document.querySelectorAll('.tile').length === 6", SHORT).await;
    b.wait(
        "live samples",
        "return document.querySelectorAll('section[aria-label=Live] circle').length > 0",
        SHORT,
    )
    .await;
    b.shot("02-overview").await;
    for (hash, ready, name) in [
        (
            "#/templates",
            "document.querySelector('.versions a')",
            "10-templates",
        ),
        (
            "#/components",
            "document.querySelector('h1') && document.getElementById('component-file')",
            "11-components",
        ),
        (
            "#/queues",
            "document.getElementById('dlq-title')",
            "12-queues",
        ),
        (
            "#/workers",
            "document.querySelector('tbody .badge')",
            "13-workers",
        ),
    ] {
        b.open(hash).await;
        b.wait(name, &format!("return {ready}"), SHORT).await;
        b.shot(name).await;
    }

    // A forged write from the admin's own session without the dashboard's header: 403.
    let cancel = format!("/v1/tasks/{running}/cancel");
    b.expect_error(&format!(
        "{cancel} - Failed to load resource: the server responded with a status of 403"
    ));
    let (status, body) = fetch_from_page(&b, &cancel, false).await;
    assert_eq!(
        (status, body["details"]["reason"].clone()),
        (403, json!("missing_ui_header")),
        "{body}"
    );

    // 390 px wide: nothing wider than the screen.
    b.client.set_window_size(390, 844).await.expect("resize");
    for (hash, name) in [
        ("#/", "14-overview-390"),
        (&*format!("#/tasks/{slow_task}"), "15-task-390"),
    ] {
        b.open(hash).await;
        b.wait(
            "the page at 390 px",
            "return document.querySelector('main h1')",
            SHORT,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let overflow = b.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
        assert!(
            overflow.as_i64().is_some_and(|o| o <= 0),
            "{hash} is wider than 390 px by {overflow}"
        );
        b.shot(name).await;
    }
    b.client.set_window_size(1280, 1300).await.expect("resize");
    phase("pages shot at 1280 and 390 px");

    // A read-only key sees no action, and a forged action is refused.
    b.open("#/").await;
    b.click("#sign-out").await;
    b.fill("#api-key", &reader).await;
    b.click("#sign-in").await;
    b.wait(
        "signed in as reader",
        "return document.querySelector('#who .key')?.textContent === 'Key: reader'",
        SHORT,
    )
    .await;
    for hash in [
        format!("#/tasks/{running}"),
        format!("#/tasks/{flaky_task}/steps/charge"),
        "#/templates/ui/slow_diamond/1.0.0".to_string(),
        "#/templates".into(),
        "#/components".into(),
        "#/queues".into(),
        "#/tasks".into(),
    ] {
        b.open(&hash).await;
        b.wait(&format!("{hash} loaded"), "return document.querySelector('main h1') && !document.getElementById('main').hasAttribute('aria-busy')", SHORT).await;
        assert_eq!(
            actions_on_page(&b).await,
            0,
            "a read-only key sees an action on {hash}"
        );
    }
    b.open(&format!("#/tasks/{running}")).await;
    b.wait(
        "the running task",
        "return document.querySelector('svg.dag')",
        SHORT,
    )
    .await;
    b.shot("16-task-read-only").await;
    let (status, body) = fetch_from_page(&b, &cancel, true).await;
    assert_eq!(
        (status, body["details"]["required"].clone()),
        (403, json!("tasks:cancel")),
        "{body}"
    );
    let state = store::task::state(&pool, running).await.unwrap();
    assert_ne!(
        state.as_deref(),
        Some("cancelled"),
        "the forged cancel changed the task"
    );
    phase("read-only: no actions, forged cancel refused");

    b.assert_no_console_errors("over the whole run").await;
    let outside = b.outside_requests().await;
    assert!(outside.is_empty(), "requests left the origin: {outside:?}");
    b.close().await;
    phase("done");
}
