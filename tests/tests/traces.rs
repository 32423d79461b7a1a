//! One task's trace across processes and languages, received by an OTLP/HTTP
//! collector in this test: the CLI's submission (continuing a trace from
//! `$TRACEPARENT`), the server's task creation, each attempt's span in the
//! Rust worker (`tasker worker`) and in a Python worker (libtasker through
//! the `tasker` package), the orchestrator's spans for each result and the
//! task's end — every span in one trace, each under the right parent — and
//! the Python handler saw its attempt's `traceparent`.
//!
//! Needs the Python package, like the polyglot test: run by
//! `scripts/test-polyglot.sh` with `POLYGLOT_PYTHON` set (#[ignore]d in a
//! plain `cargo test`).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::Value;
use sqlx::PgPool;
use tasker_testkit::{eventually, migrated, register_inline};

mod common;
use common::{admin_key, cli, db_url, free_port, Proc};

const TEMPLATE: &str = r#"
namespace: traced
name: two_runtimes
version: 1.0.0
steps:
  - { name: in_rust, handler: { name: demo.sleep, config: { ms: 1 } } }
  - name: in_python
    pool: traced_python
    handler: { name: traced.python }
    depends_on: [in_rust]
"#;

const PYTHON_WORKER: &str = r#"
import os, tasker

@tasker.handler("traced.python")
def seen(ctx):
    return {"traceparent": ctx.traceparent, "trace_id": ctx.trace_id}

tasker.Worker(pools=["traced_python"], config=os.environ["TRACE_WORKER_CONFIG"], threads=1).run()
"#;

/// The caller's trace that the CLI continues.
const CALLER_TRACE: &str = "7e1a4c0b8f2d4e6a9c3b5d7f1e2a4c6b";
const CALLER_SPAN: &str = "a1b2c3d4e5f60718";

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: BTreeMap<String, String>,
}

type Spans = Arc<Mutex<Vec<Received>>>;

/// The collector: `POST /v1/traces`, OTLP protobuf.
async fn collect(State(spans): State<Spans>, body: Bytes) -> &'static str {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return "";
    };
    let mut got = spans.lock().unwrap();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            got.push(Received {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                attributes: span
                    .attributes
                    .iter()
                    .filter_map(|kv| {
                        Some((kv.key.clone(), text(kv.value.as_ref()?.value.as_ref()?)?))
                    })
                    .collect(),
            });
        }
    }
    ""
}

fn text(v: &AnyValue) -> Option<String> {
    match v {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find<'a>(spans: &'a [Received], name: &str, step: Option<&str>) -> Option<&'a Received> {
    spans.iter().find(|s| {
        s.name == name
            && step.is_none_or(|st| s.attributes.get("tasker.step").map(String::as_str) == Some(st))
    })
}

#[sqlx::test(migrations = false)]
#[ignore = "needs the Python package: scripts/test-polyglot.sh runs it with POLYGLOT_PYTHON"]
async fn one_trace_holds_the_submission_the_orchestrator_and_both_workers(pool: PgPool) {
    let python = std::env::var("POLYGLOT_PYTHON").expect("POLYGLOT_PYTHON: a python with `tasker`");
    migrated(&pool).await;
    register_inline(&pool, TEMPLATE).await;

    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/traces", post(collect))
        .with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let bind = format!("127.0.0.1:{}", free_port());
    let traces = [
        ("TASKER_TELEMETRY__TRACES_ENABLED", "true"),
        ("TASKER_TELEMETRY__OTLP_ENDPOINT", collector.as_str()),
        ("TASKER_TELEMETRY__TRACE_EXPORT_INTERVAL_MS", "200"),
    ];
    let mut env = traces.to_vec();
    env.push(("TASKER_WEB__BIND", bind.as_str()));
    let _server = Proc::start_with(&pool, &["server"], &env);
    let _rust = Proc::start_with(&pool, &["worker", "--namespace", "traced"], &traces);
    let script = std::env::temp_dir().join(format!("traced_worker_{}.py", std::process::id()));
    std::fs::write(&script, PYTHON_WORKER).unwrap();
    let config = format!(
        "[telemetry]\ntraces_enabled = true\notlp_endpoint = \"{collector}\"\n\
         trace_export_interval_ms = 200\n[worker]\nregistry_heartbeat_seconds = 1\n"
    );
    let python_worker = Command::new(&python)
        .arg(&script)
        .env("DATABASE_URL", db_url(&pool))
        .env("TRACE_WORKER_CONFIG", &config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python worker");
    let _python = Proc(python_worker);

    let up = eventually(Duration::from_secs(60), || async {
        std::net::TcpStream::connect(bind.as_str()).is_ok()
    })
    .await;
    assert!(up, "the server never listened");
    let key = admin_key(&pool, "traces");
    let url = format!("http://{bind}");
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let mut client_env = traces.to_vec();
    client_env.push(("TASKER_ENV", "test"));
    client_env.push(("TRACEPARENT", caller.as_str()));
    let out = cli(
        &client_env,
        &[
            "--api",
            &url,
            "--api-key",
            &key,
            "task",
            "create",
            "--namespace",
            "traced",
            "--name",
            "two_runtimes",
            "--json",
        ],
    );
    let created: Value = serde_json::from_str(&out).expect("task create --json");
    let task = created["task_id"].as_str().expect("task_id").to_string();

    let done = eventually(Duration::from_secs(60), || async {
        let state: String =
            sqlx::query_scalar("SELECT state FROM tasker.tasks WHERE id = $1::uuid")
                .bind(&task)
                .fetch_one(&pool)
                .await
                .unwrap();
        state == "complete"
    })
    .await;
    assert!(
        done,
        "the task did not complete; spans received so far: {:#?}",
        spans.lock().unwrap()
    );
    // Everything is sent within a few export intervals.
    let all_in = eventually(Duration::from_secs(30), || async {
        let got = spans.lock().unwrap().clone();
        find(&got, "tasker.task.finish", None).is_some()
            && got
                .iter()
                .filter(|s| s.name == "tasker.step.result")
                .count()
                >= 2
            && find(&got, "tasker.step.attempt", Some("in_python")).is_some()
    })
    .await;
    let got: Vec<Received> = spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id == CALLER_TRACE)
        .cloned()
        .collect();
    assert!(
        all_in,
        "spans missing; received in the caller's trace: {got:#?}"
    );

    let client = find(&got, "tasker.client.create_task", None).expect("the CLI's span");
    assert_eq!(client.service, "tasker-cli");
    assert_eq!(client.parent, CALLER_SPAN, "the CLI continues $TRACEPARENT");
    let create = find(&got, "tasker.task.create", None).expect("the server's span");
    assert_eq!(create.service, "tasker-server");
    assert_eq!(create.parent, client.span_id);
    assert_eq!(create.attributes.get("tasker.task_id"), Some(&task));

    let in_rust = find(&got, "tasker.step.attempt", Some("in_rust")).expect("the Rust attempt");
    let in_python =
        find(&got, "tasker.step.attempt", Some("in_python")).expect("the Python attempt");
    assert_eq!(in_rust.service, "tasker-worker");
    assert_eq!(in_python.service, "tasker-python");
    for attempt in [in_rust, in_python] {
        assert_eq!(
            attempt.parent, create.span_id,
            "an attempt is a child of the task's creation"
        );
        let result = got
            .iter()
            .find(|s| s.name == "tasker.step.result" && s.parent == attempt.span_id)
            .unwrap_or_else(|| panic!("no result span under {attempt:?}"));
        assert_eq!(
            result.attributes.get("tasker.result").map(String::as_str),
            Some("completed")
        );
    }
    let finish = find(&got, "tasker.task.finish", None).unwrap();
    let last_result = got
        .iter()
        .find(|s| s.name == "tasker.step.result" && s.parent == in_python.span_id)
        .unwrap();
    assert_eq!(finish.parent, last_result.span_id);

    // The Python handler saw its attempt's span as its parent.
    let result: Value = sqlx::query_scalar(
        "SELECT result FROM tasker.steps WHERE task_id = $1::uuid AND name = 'in_python'",
    )
    .bind(&task)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        result["traceparent"].as_str(),
        Some(format!("00-{CALLER_TRACE}-{}-01", in_python.span_id).as_str())
    );
    assert_eq!(result["trace_id"].as_str(), Some(CALLER_TRACE));
    eprintln!(
        "traces: {} spans in the caller's trace from {:?}",
        got.len(),
        got.iter()
            .map(|s| s.service.as_str())
            .collect::<std::collections::BTreeSet<_>>()
    );
    let _ = std::fs::remove_file(script);
}
