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

mod common;
#[path = "ui_support/mod.rs"]
mod ui_support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use tasker_store as store;
use tasker_testkit::{migrated, register_inline, steps};
use ui_support::browser::{js_str, Browser};
use ui_support::cluster::{screenshot_dir, Cluster};
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

/// Waits until the page shows a task's page and returns the task id.
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

/// Marks the page; [`wait_node`] fails if the mark is gone (a reload).
async fn mark_page(b: &Browser) {
    b.js("window.__notReloaded = true; return 1").await;
}

/// Waits for DAG node `step` to show `state`, the page never reloaded.
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
    assert_eq!(got, json!(true), "the page was reloaded (step {step})");
}

/// Sends `POST path` from the page with its session cookie, as a forger
/// would (with or without the dashboard's header); returns status and body.
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

/// Signs in: a wrong key is refused on the form, `key` accepted.
async fn sign_in(b: &mut Browser, key: &str, shot: Option<&str>) {
    b.wait(
        "the sign-in form",
        "return document.getElementById('api-key')",
        SHORT,
    )
    .await;
    if let Some(name) = shot {
        b.shot(name).await;
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
    }
    b.fill("#api-key", key).await;
    b.click("#sign-in").await;
    b.wait(
        "the navigation",
        "return document.querySelectorAll('#nav a').length === 6",
        SHORT,
    )
    .await;
}

/// Creates a slow task from its template's page, checks its DAG, and
/// watches its slow step run and complete without a reload; then opens the
/// step's page from its node by keyboard. Returns the task.
async fn create_and_watch(b: &Browser, pool: &PgPool) -> Uuid {
    b.open("#/templates/ui/slow_diamond/1.0.0").await;
    b.shot("03-template").await;
    b.click("button[data-action=create]").await;
    let task = task_page_id(b).await;
    mark_page(b).await;
    let nodes = b
        .js("return [...document.querySelectorAll('svg.dag g.node')].map(g => [g.dataset.step, g.dataset.state])")
        .await;
    let nodes = nodes.as_array().expect("nodes");
    let names: Vec<&str> = nodes.iter().filter_map(|n| n[0].as_str()).collect();
    assert_eq!(names, ["fetch", "slow", "quick", "report"], "{nodes:?}");
    let known = [
        "pending",
        "enqueued",
        "in_progress",
        "enqueued_for_orchestration",
        "complete",
    ];
    assert!(
        nodes
            .iter()
            .all(|n| n[1].as_str().is_some_and(|s| known.contains(&s))),
        "{nodes:?}"
    );
    let edges = b
        .js("return document.querySelectorAll('svg.dag path.edge').length")
        .await;
    assert_eq!(edges, json!(4));

    wait_node(b, "slow", "in_progress", SHORT).await;
    b.wait(
        "following",
        "return document.querySelector('.live.on')",
        SHORT,
    )
    .await;
    b.shot("04-task-running").await;
    wait_node(b, "slow", "complete", LONG).await;
    wait_node(b, "report", "complete", SHORT).await;
    b.wait(
        "the task complete",
        "return document.querySelector('#task-state .badge').dataset.state === 'complete'",
        SHORT,
    )
    .await;
    let done = steps(pool, task).await;
    assert!(done.values().all(|s| s.state == "complete"), "{done:#?}");
    b.shot("05-task-complete").await;

    b.press_enter(
        "svg.dag g.node[data-step=slow]",
        "return location.hash.endsWith('/steps/slow')",
    )
    .await;
    b.wait(
        "an attempt of the step",
        "return document.querySelector('section[aria-labelledby=attempts-title] tbody tr')",
        SHORT,
    )
    .await;
    b.shot("06-step").await;
    task
}

/// Creates a task whose `charge` step fails until an instant, sees it fail,
/// retries it from the page after that instant and sees it succeed.
async fn retry_a_failed_step(b: &Browser, pool: &PgPool) -> Uuid {
    let fail_until = chrono::Utc::now() + chrono::TimeDelta::seconds(12);
    b.open("#/templates/ui/flaky_charge/1.0.0").await;
    let input = json!({ "fail_until": fail_until.to_rfc3339() });
    b.fill("#task-context", &input.to_string()).await;
    b.fill("#task-idempotency-key", "order-42").await;
    b.click("button[data-action=create]").await;
    let task = task_page_id(b).await;
    mark_page(b).await;
    wait_node(b, "charge", "error", LONG).await;
    let retry = "button[data-action=retry][data-step=charge]";
    b.wait(
        "the retry button",
        &format!("return document.querySelector({})", js_str(retry)),
        SHORT,
    )
    .await;
    b.shot("07-task-failed").await;
    let left = (fail_until - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(500)).await;
    b.click(retry).await;
    wait_node(b, "charge", "complete", LONG).await;
    wait_node(b, "ship", "complete", SHORT).await;
    b.wait(
        "the retried task complete",
        "return document.querySelector('#task-state .badge').dataset.state === 'complete'",
        SHORT,
    )
    .await;
    assert_eq!(steps(pool, task).await["charge"].state, "complete");
    b.shot("08-task-retried").await;
    b.open(&format!("#/tasks/{task}/steps/charge")).await;
    b.wait(
        "the failed run and the retried one",
        "return document.querySelectorAll('section[aria-labelledby=attempts-title] tbody tr').length === 2",
        SHORT,
    )
    .await;
    b.shot("08b-step-retried").await;
    task
}

/// The task list: all six tasks, the search by idempotency key, a filter.
async fn list_search_filter(b: &Browser, flaky_task: Uuid) {
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
        .wait(
            "the search result",
            "const r = document.querySelectorAll('.search-results tr[data-task]'); \
             return r.length === 1 && r[0].dataset.task",
            SHORT,
        )
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
}

/// The overview and the catalogue pages, each with a screenshot; then the
/// overview and a task at 390 px, none wider than the screen.
async fn every_page(b: &Browser, task: Uuid) {
    b.open("#/").await;
    b.wait(
        "the overview's charts and tiles",
        "return document.querySelectorAll('svg.chart').length === 3 && \
         document.querySelectorAll('.tile').length === 6",
        SHORT,
    )
    .await;
    b.wait(
        "live samples",
        "return document.querySelectorAll('section[aria-label=Live] circle').length > 0",
        SHORT,
    )
    .await;
    b.shot("02-overview").await;
    for (hash, ready, name) in [
        ("#/templates", ".versions a", "10-templates"),
        ("#/components", "#component-file", "11-components"),
        ("#/queues", "#dlq-title", "12-queues"),
        ("#/workers", "tbody .badge", "13-workers"),
    ] {
        b.open(hash).await;
        let script = format!("return document.querySelector({})", js_str(ready));
        b.wait(name, &script, SHORT).await;
        b.shot(name).await;
    }
    b.client.set_window_size(390, 844).await.expect("resize");
    for (hash, name) in [
        ("#/".to_string(), "14-overview-390"),
        (format!("#/tasks/{task}"), "15-task-390"),
    ] {
        b.open(&hash).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let overflow = b
            .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            .await;
        assert!(
            overflow.as_i64().is_some_and(|o| o <= 0),
            "{hash} is wider than 390 px by {overflow}"
        );
        b.shot(name).await;
    }
    b.client.set_window_size(1280, 1300).await.expect("resize");
}

/// Signed in with the read-only key: no page shows an action, and a forged
/// cancel of the `running` task from the page is refused.
async fn read_only(b: &mut Browser, cluster: &Cluster, running: Uuid, flaky_task: Uuid) {
    b.open("#/").await;
    b.click("#sign-out").await;
    sign_in(b, &cluster.reader, None).await;
    for hash in [
        format!("#/tasks/{running}"),
        format!("#/tasks/{flaky_task}/steps/charge"),
        "#/templates/ui/slow_diamond/1.0.0".into(),
        "#/templates".into(),
        "#/components".into(),
        "#/queues".into(),
        "#/tasks".into(),
    ] {
        b.open(&hash).await;
        let actions = b
            .js("return document.querySelectorAll('[data-action]').length")
            .await;
        assert_eq!(actions, json!(0), "a read-only key sees actions on {hash}");
    }
    b.open(&format!("#/tasks/{running}")).await;
    b.shot("16-task-read-only").await;
    let cancel = format!("/v1/tasks/{running}/cancel");
    let (status, body) = fetch_from_page(b, &cancel, true).await;
    assert_eq!(
        (status, body["details"]["required"].clone()),
        (403, json!("tasks:cancel")),
        "{body}"
    );
    let state = store::task::state(&cluster.pool, running).await.unwrap();
    assert_ne!(state.as_deref(), Some("cancelled"), "the forged cancel ran");
}

#[sqlx::test(migrations = false)]
#[ignore = "needs Debian's chromium and chromium-driver: run scripts/test-ui.sh"]
async fn the_dashboard_in_a_real_browser(pool: PgPool) {
    let started = Instant::now();
    let phase = |what: &str| eprintln!("ui [{:5.1} s] {what}", started.elapsed().as_secs_f64());
    migrated(&pool).await;
    register_inline(&pool, SLOW).await;
    register_inline(&pool, FLAKY).await;
    let cluster = Cluster::start(&pool).await;
    phase("server and worker up; starting the browser");
    let mut b = Browser::start(&cluster.origin, screenshot_dir()).await;
    b.open("#/").await;
    sign_in(&mut b, &cluster.admin, Some("01-sign-in")).await;
    b.assert_no_console_errors("signing in").await;
    phase("signed in");

    let slow_task = create_and_watch(&b, &pool).await;
    phase("created from the page; 4 nodes; the slow step turned complete live");
    let flaky_task = retry_a_failed_step(&b, &pool).await;
    b.assert_no_console_errors("creating, watching and retrying tasks")
        .await;
    phase("the failed step was retried from the page and succeeded");

    // More tasks for the list; the last one stays running for the forgeries.
    for i in 0..3 {
        let key = format!("batch-{i}");
        cluster
            .create_task("slow_diamond", Some(&key), json!({}))
            .await;
    }
    let running = cluster.create_task("slow_diamond", None, json!({})).await;
    list_search_filter(&b, flaky_task).await;
    every_page(&b, slow_task).await;
    phase("every page shot, at 1280 and 390 px");

    // A write from the admin's own session without the dashboard's header: 403.
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
    read_only(&mut b, &cluster, running, flaky_task).await;
    phase("read-only: no actions; forged cancels refused");

    b.assert_no_console_errors("over the whole run").await;
    let outside = b.outside_requests().await;
    assert!(outside.is_empty(), "requests left the origin: {outside:?}");
    b.close().await;
    phase("done");
}
