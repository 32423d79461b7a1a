//! Hostile clients against a real server (issue 16), the findings about
//! connections, listings, event streams and the browser: each test performs
//! the attack and asserts its bounded outcome (status, size, time) and, where
//! the finding froze the server, that `/health/live` keeps answering within
//! 100 ms. The attackers run on threads of their own (blocking sockets or a
//! runtime of their own), so the server's runtime is measured, not theirs.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`;
//! `-- --nocapture` prints the figures.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use tasker_api::keys::{self, KeySpec, Permission};
use tasker_config::TaskerConfig;
use tasker_testkit::{migrated, Stack};

/// One step, no input schema: contexts of any size.
const ONE_STEP: &str =
    "namespace: hostile\nname: one\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: { name: noop }\n";

struct Server {
    base: String,
    http: Client,
    admin: String,
    reader: String,
    _stack: Stack,
}

impl Server {
    /// The API (and an orchestrator, no worker: tasks stay pending) with
    /// `change` applied to the configuration; an admin and a read-only key.
    async fn start(pool: &PgPool, change: impl FnOnce(&mut TaskerConfig)) -> Server {
        migrated(pool).await;
        let stack = Stack::builder(pool)
            .workers(0)
            .config(change)
            .api()
            .start()
            .await;
        let (_, admin) = keys::create_key(pool, &KeySpec::new("admin", &[Permission::Admin]))
            .await
            .unwrap();
        let (_, reader) = keys::create_key(pool, &KeySpec::new("reader", &[Permission::TasksRead]))
            .await
            .unwrap();
        Server {
            base: stack.base_url(),
            http: Client::new(),
            admin,
            reader,
            _stack: stack,
        }
    }

    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    async fn register(&self, yaml: &str) {
        let res = self
            .http
            .post(format!("{}/v1/templates", self.base))
            .bearer_auth(&self.admin)
            .header("content-type", "application/yaml")
            .body(yaml.to_string())
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert!(
            status.is_success(),
            "{status}: {}",
            res.text().await.unwrap()
        );
    }

    async fn create(&self, name: &str, context: Value) -> String {
        let res = self
            .http
            .post(format!("{}/v1/tasks", self.base))
            .bearer_auth(&self.admin)
            .json(&json!({"namespace": "hostile", "name": name, "context": context}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.unwrap();
        body["task_id"].as_str().unwrap().to_string()
    }

    async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }
}

/// `GET /health/live` from a thread of its own: how long it took.
fn probe_health(addr: &str) -> Duration {
    let sent = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    sent.elapsed()
}

/// Opens `n` connections that send half a request's headers and then
/// nothing; returns when each was closed by the server, the longest wait.
fn slow_clients(addr: &str, n: usize, give_up: Duration) -> Duration {
    let started = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                    .unwrap();
                s.set_read_timeout(Some(give_up)).unwrap();
                let mut buf = [0u8; 1024];
                // The server closes (EOF, or a 408 then EOF) or the read times out.
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => return true,
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                        Err(_) => return false,
                    }
                }
            })
        })
        .collect();
    for t in threads {
        assert!(
            t.join().unwrap(),
            "a half-sent request was still open after {give_up:?}"
        );
    }
    started.elapsed()
}

/// MEDIUM: half-sent requests were held 75 s and none closed; under a low fd
/// limit `accept` failed. Now a client has `web.header_read_timeout_ms` to
/// send its headers, an idle connection is closed, and at most
/// `web.max_connections` are served at once.
#[sqlx::test(migrations = false)]
async fn slow_and_idle_clients_are_cut_off_and_connections_capped(pool: PgPool) {
    let server = Server::start(&pool, |c| {
        c.web.header_read_timeout_ms = 500;
        c.web.idle_timeout_ms = 1_000;
        c.web.max_connections = 64;
    })
    .await;
    let addr = server.addr();

    // 40 slow clients, under the cap: health answers at once throughout, and
    // each slow client is cut off after the header time-out.
    let (a, b) = (addr.clone(), addr.clone());
    let attack = std::thread::spawn(move || slow_clients(&a, 40, Duration::from_secs(5)));
    let probes = std::thread::spawn(move || {
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            slowest = slowest.max(probe_health(&b));
            std::thread::sleep(Duration::from_millis(20));
        }
        slowest
    });
    let (cut_after, slowest) =
        tokio::task::spawn_blocking(move || (attack.join().unwrap(), probes.join().unwrap()))
            .await
            .unwrap();
    eprintln!("40 slow clients cut off within {cut_after:?}; /health/live slowest {slowest:?}");
    assert!(slowest < Duration::from_millis(100), "{slowest:?}");
    assert!(cut_after < Duration::from_secs(2), "{cut_after:?}");

    // 200 slow clients, over the cap: the rest wait in the backlog and are
    // served (and cut off) as slots free; nothing stays open.
    let c = addr.clone();
    let over = tokio::task::spawn_blocking(move || slow_clients(&c, 200, Duration::from_secs(10)))
        .await
        .unwrap();
    eprintln!("200 slow clients over a cap of 64 all closed within {over:?}");
    let d = addr.clone();
    let after = tokio::task::spawn_blocking(move || probe_health(&d))
        .await
        .unwrap();
    assert!(after < Duration::from_millis(100), "{after:?}");

    // A keep-alive connection left idle is closed after the idle time-out.
    let e = addr.clone();
    let idle = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&e).unwrap();
        s.write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let idle_from = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(
            s.read(&mut buf).unwrap(),
            0,
            "the idle connection was closed"
        );
        idle_from.elapsed()
    })
    .await
    .unwrap();
    // Between requests hyper's header time-out runs too, so the shorter of
    // the two closes it.
    eprintln!("an idle keep-alive connection was closed after {idle:?}");
    assert!(
        idle >= Duration::from_millis(400) && idle < Duration::from_secs(3),
        "{idle:?}"
    );
}

/// MEDIUM: `GET /v1/tasks?limit=500` over 10 MB contexts answered 400 MB.
/// Now a listing carries summaries; contexts only on request, and then a
/// page ends once it carries `web.list_payload_limit_bytes` of them.
#[sqlx::test(migrations = false)]
async fn task_lists_are_summaries_and_contexts_come_within_a_budget(pool: PgPool) {
    let server = Server::start(&pool, |c| c.web.list_payload_limit_bytes = 2_500_000).await;
    server.register(ONE_STEP).await;
    let big = "x".repeat(1_000_000);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(server.create("one", json!({"i": i, "big": big})).await);
    }

    let res = server.get("/v1/tasks?limit=500", &server.reader).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    eprintln!("a page of 5 tasks with 1 MB contexts: {} bytes", text.len());
    assert!(text.len() < 10_000, "{} bytes", text.len());
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["tasks"].as_array().unwrap().len(), 5);
    assert!(page["tasks"][0].get("context").is_none());

    // Opted in: two contexts (2 MB) fit in 2.5 MB, the third would not; the
    // cursor continues where the page ended, until all five were read.
    let mut seen = Vec::new();
    let mut path = "/v1/tasks?limit=500&include_context=true".to_string();
    loop {
        let res = server.get(&path, &server.reader).await;
        assert_eq!(res.status(), StatusCode::OK);
        let text = res.text().await.unwrap();
        assert!(text.len() < 2_600_000, "{} bytes in one page", text.len());
        let page: Value = serde_json::from_str(&text).unwrap();
        let tasks = page["tasks"].as_array().unwrap();
        assert!(
            !tasks.is_empty() && tasks.len() <= 2,
            "{} tasks",
            tasks.len()
        );
        for t in tasks {
            assert_eq!(t["context"]["big"].as_str().unwrap().len(), 1_000_000);
            seen.push(t["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => path = format!("/v1/tasks?limit=500&include_context=true&cursor={next}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every task once, newest first");
}

/// MEDIUM: every event stream read the task's whole history on opening and
/// nothing capped them: 300 opens on a 10k-step task exhausted the pool.
/// Now opening costs two index probes, and streams are capped overall and
/// per key (503 with `Retry-After` beyond).
#[sqlx::test(migrations = false)]
async fn event_streams_are_cheap_to_open_and_capped(pool: PgPool) {
    let server = Server::start(&pool, |c| {
        c.web.max_event_streams = 120;
        c.web.max_event_streams_per_key = 100;
    })
    .await;
    let steps: String = (0..1000)
        .map(|i| format!("  - name: s{i}\n    handler: {{ name: noop }}\n"))
        .collect();
    server
        .register(&format!(
            "namespace: hostile\nname: wide\nversion: 1.0.0\nsteps:\n{steps}"
        ))
        .await;
    let task = server.create("wide", json!({})).await;
    let path = format!("/v1/tasks/{task}/events");

    // 100 streams of one key at once: each opens quickly, and an admin
    // request in the middle of it is answered at once.
    let opened = Instant::now();
    let opens = futures::future::join_all((0..100).map(|_| server.get(&path, &server.admin))).await;
    let open_time = opened.elapsed();
    for res in &opens {
        assert_eq!(res.status(), StatusCode::OK);
    }
    let asked = Instant::now();
    assert_eq!(
        server.get("/v1/queues", &server.admin).await.status(),
        StatusCode::OK
    );
    let admin_time = asked.elapsed();
    eprintln!("100 streams on a 1000-step task opened in {open_time:?}; an admin request then took {admin_time:?}");
    assert!(open_time < Duration::from_secs(5), "{open_time:?}");
    assert!(admin_time < Duration::from_secs(1), "{admin_time:?}");

    // The 101st of the key: 503 with Retry-After.
    let res = server.get(&path, &server.admin).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    // Another key may open 20 more, then the server is full.
    let mut others = Vec::new();
    for _ in 0..20 {
        let res = server.get(&path, &server.reader).await;
        assert_eq!(res.status(), StatusCode::OK);
        others.push(res);
    }
    let full = server.get(&path, &server.reader).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = full.json().await.unwrap();
    assert_eq!(body["error"], "busy");
    // Closing streams frees their slots.
    drop(opens);
    drop(others);
    let mut reopened = None;
    for _ in 0..50 {
        let res = server.get(&path, &server.reader).await;
        if res.status() == StatusCode::OK {
            reopened = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "a closed stream's slot is freed");
}

/// LOW: with auth disabled, cross-origin `text/plain` POSTs registered a
/// template and cancelled a task. Now a change must not come from another
/// origin nor with a form's content type.
#[sqlx::test(migrations = false)]
async fn with_auth_off_cross_site_changes_are_refused(pool: PgPool) {
    let server = Server::start(&pool, |c| c.web.auth.enabled = false).await;
    let post = |content_type: &'static str, origin: Option<String>| {
        let mut req = server
            .http
            .post(format!("{}/v1/templates", server.base))
            .header("content-type", content_type)
            .body(ONE_STEP);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let evil = post("application/yaml", Some("http://evil.example".into()))
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    let form = post("text/plain", None).await.unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let listed: Value = server
        .http
        .get(format!("{}/v1/templates", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["templates"], json!([]), "nothing was registered");
    // Same origin (a page this server serves) and non-browser clients work.
    let same = post("application/yaml", Some(server.base.clone()))
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::CREATED);
    let cli = post("application/yaml", None).await.unwrap();
    assert_eq!(cli.status(), StatusCode::OK, "registered again, identical");
}

/// LOW: `/docs` loaded redoc "latest" from a CDN, without integrity or a
/// content security policy. Now it is served from the binary under a CSP
/// that allows only this origin.
#[sqlx::test(migrations = false)]
async fn docs_load_nothing_from_another_origin(pool: PgPool) {
    let server = Server::start(&pool, |_| {}).await;
    let res = server
        .http
        .get(format!("{}/docs", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    let js = server
        .http
        .get(format!("{}/docs/redoc.standalone.js", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.bytes().await.unwrap().len() > 500_000);
}

/// LOW: `/metrics` needed no key and each scrape queried the database per
/// namespace. Now a key can be required, and a scrape queries nothing (40
/// scrapers at once are answered from memory).
#[sqlx::test(migrations = false)]
async fn metrics_can_require_a_key_and_scrapes_query_nothing(pool: PgPool) {
    let server = Server::start(&pool, |c| c.web.metrics_requires_key = true).await;
    let open = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), StatusCode::UNAUTHORIZED);
    let started = Instant::now();
    let scrapes =
        futures::future::join_all((0..40).map(|_| server.get("/metrics", &server.reader))).await;
    let took = started.elapsed();
    for res in scrapes {
        assert_eq!(res.status(), StatusCode::OK);
    }
    eprintln!("40 scrapes at once: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}
