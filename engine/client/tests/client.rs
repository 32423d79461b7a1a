//! The Rust client against a real API server on 127.0.0.1:0 with an
//! in-process orchestrator and worker, on a freshly migrated database per test.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use tasker_api_types::{CreateTaskRequest, ListTasksParams};
use tasker_client::{Client, ClientError, TaskEvent};
use tasker_testkit::{migrated, Stack, BOOTSTRAP_KEY as BOOT, DIAMOND_YAML as DIAMOND};

const WAIT: Duration = Duration::from_secs(30);

/// The API, one orchestrator and one worker (example handlers).
async fn start(pool: &PgPool) -> Stack {
    migrated(pool).await;
    Stack::builder(pool).api().start().await
}

/// A client of `stack`'s API with `key`.
fn client(stack: &Stack, key: Option<&str>) -> Client {
    Client::new(&stack.base_url(), key.map(String::from)).unwrap()
}

#[sqlx::test(migrations = false)]
async fn diamond_through_the_client(pool: PgPool) {
    let stack = start(&pool).await;
    let c = client(&stack, Some(BOOT));

    let validated = c.validate_template(DIAMOND).await.unwrap();
    assert!(!validated.created);
    let registered = c.register_template(DIAMOND).await.unwrap();
    assert!(registered.created, "{registered:?}");
    assert_eq!(registered.key, validated.key);
    let templates = c.list_templates().await.unwrap();
    assert!(templates.templates.iter().any(|t| t.name == "diamond"));

    let created = c
        .create_task(&CreateTaskRequest {
            namespace: "demo".into(),
            name: "diamond".into(),
            version: None,
            context: json!({"value": 3}),
            priority: 0,
            idempotency_key: None,
            run_at: None,
            delay_seconds: None,
        })
        .await
        .unwrap();
    assert!(created.created);
    let id = created.task_id;

    // Follow the events until the stream closes; the last state is complete.
    let events: Vec<TaskEvent> = tokio::time::timeout(WAIT, async {
        c.task_events(id)
            .await
            .unwrap()
            .map(|e| e.unwrap())
            .collect::<Vec<_>>()
            .await
    })
    .await
    .expect("the event stream did not close");
    let last_state = events
        .iter()
        .rev()
        .find_map(|e| match e {
            TaskEvent::State(s) => Some(s.state.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_state, "complete", "{events:#?}");
    let d = c.get_task(id).await.unwrap();
    for s in &d.steps {
        // Every step completed; if the stream started late, at least the task's end was seen.
        assert_eq!(s.state, "complete", "{s:?}");
    }
    assert_eq!(d.steps.len(), 4);
    assert_eq!(d.edges.len(), 4);

    // Listed, filtered and paged.
    let filter = ListTasksParams {
        namespace: Some("demo".into()),
        state: Some("complete".into()),
        ..Default::default()
    };
    let page = c.list_tasks(&filter, None).await.unwrap();
    assert!(page.tasks.iter().any(|t| t.id == id));
    let first = &d.steps[0].name;
    let history = c.step_transitions(id, first).await.unwrap();
    assert_eq!(history.last().unwrap().to_state, "complete");
    assert_eq!(c.get_step(id, first).await.unwrap().state, "complete");

    // A finished task's stream opens with its final state and closes.
    let again: Vec<_> = c.task_events(id).await.unwrap().collect().await;
    assert_eq!(again.len(), 1);

    let queues = c.queues().await.unwrap();
    assert!(queues
        .queues
        .iter()
        .any(|q| q.namespace.as_deref() == Some("demo")));

    // Conflicts and unknown ids decode into the error shape.
    let err = c.retry_step(id, first, None).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT), "{err:?}");
    let err = c.cancel_task(id, Some("late".into())).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT), "{err:?}");
    let err = c.get_task(uuid::Uuid::now_v7()).await.unwrap_err();
    match &err {
        ClientError::Api { status, error, .. } => {
            assert_eq!(*status, StatusCode::NOT_FOUND);
            assert_eq!(error, "not_found");
        }
        other => panic!("expected Api, got {other:?}"),
    }
    stack.stop().await;
}

#[sqlx::test(migrations = false)]
async fn api_errors_decode_into_client_errors(pool: PgPool) {
    let stack = start(&pool).await;

    let anonymous = client(&stack, None);
    let err = anonymous.list_templates().await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(err.code(), Some("unauthorized"));

    let c = client(&stack, Some(BOOT));
    let err = c.register_template("name: [unclosed").await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::UNPROCESSABLE_ENTITY),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("validation_failed"));
    match c
        .create_task(&CreateTaskRequest {
            namespace: "demo".into(),
            name: "nope".into(),
            version: None,
            context: json!({}),
            priority: 0,
            idempotency_key: None,
            run_at: None,
            delay_seconds: None,
        })
        .await
        .unwrap_err()
    {
        ClientError::Api {
            status, message, ..
        } => {
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert!(message.contains("nope"), "{message}");
        }
        other => panic!("expected Api, got {other:?}"),
    }

    stack.stop().await;
    // Nobody listening any more: a connection error, not an API error.
    let err = c.queues().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}
