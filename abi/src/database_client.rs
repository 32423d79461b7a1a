//! A client over the database: register templates, create tasks, read them and
//! wait for them. It needs no running API server, only the database (an
//! orchestrator must run somewhere for tasks to progress).

use std::time::Duration;

use tasker_config::TaskerConfig;
use tasker_model::state::TaskState;
use tasker_model::template::Template;
use tasker_notify::watch::{TaskWatcher, WaitError};
use tasker_notify::Wakeups;
use tasker_store::db::Database;
use tasker_store::task::{Created, NewTask, Start};
use tasker_store::template::TemplateCache;
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::error::AbiError;

/// A client of the database (not of the HTTP API: that is `tasker_client`).
/// All methods block the calling thread and are thread-safe.
pub struct DatabaseClient {
    /// Always `Some` until dropped; dropped inside the runtime, before it.
    db: Option<Database>,
    pool: sqlx::PgPool,
    wakeups: Wakeups,
    templates: TemplateCache,
    watcher: tokio::sync::OnceCell<TaskWatcher>,
    id: String,
    runtime: Runtime,
}

impl DatabaseClient {
    /// Connects to the database of `config` (see [`crate::worker::load_config`])
    /// and migrates it.
    pub fn new(config: &TaskerConfig) -> Result<DatabaseClient, AbiError> {
        let runtime = crate::runtime::build("tasker-client", 1)?;
        let db = runtime.block_on(crate::worker::open_database(config))?;
        Ok(DatabaseClient {
            pool: db.pool.clone(),
            wakeups: Wakeups::new(&db.pool),
            db: Some(db),
            templates: TemplateCache::default(),
            watcher: tokio::sync::OnceCell::new(),
            id: format!("client-{}", Uuid::now_v7()),
            runtime,
        })
    }

    /// Registers a template given as YAML or JSON text; returns its key
    /// (`namespace/name@version`). Registering the same definition again is a
    /// no-op; a different one under the same version is an error.
    pub fn register_template(&self, text: &str) -> Result<String, AbiError> {
        let template = Template::from_yaml_str(text, "<template text>")
            .map_err(|e| AbiError::InvalidArgument(e.to_string()))?;
        self.block_on(tasker_store::template::register(&self.pool, &template))?;
        Ok(template.key())
    }

    /// Creates a task (one transaction; its root steps are enqueued with it).
    pub fn create_task(&self, request: &NewTask) -> Result<Created, AbiError> {
        // Announced inside the runtime: the NOTIFY goes out from a task.
        Ok(self.block_on(async {
            let (created, changed) =
                tasker_store::task::create(&self.pool, &self.templates, request, &self.id).await?;
            self.wakeups.announce(&changed);
            Ok::<_, tasker_store::StoreError>(created)
        })?)
    }

    /// Creates many tasks in one statement and transaction: all of them, or
    /// none when one is refused (the error names it, `tasks[i]: ...`); up to
    /// [`tasker_store::task::MAX_BATCH`]. One [`Created`] per task, in order.
    pub fn create_tasks(&self, requests: &[NewTask]) -> Result<Vec<Created>, AbiError> {
        let batch: Vec<_> = requests
            .iter()
            .map(|r| (r.clone(), Start::default()))
            .collect();
        self.create_batch(&batch)
    }

    /// [`DatabaseClient::create_tasks`] from JSON text: an array of task
    /// objects, each as [`NewTask`] takes it (`namespace`, `name`, and
    /// optionally `version`, `context`, `priority`, `idempotency_key`), and
    /// optionally a delayed start as [`Start`] (`run_at`, RFC 3339, or
    /// `delay_seconds`). The text is read exactly as a task's input is
    /// ([`crate::handler::json_exact`]); a task that is not a valid request is
    /// named (`tasks[i]: ...`) and nothing is created. The bindings' batch
    /// creation goes through here.
    pub fn create_tasks_json(&self, tasks_json: &str) -> Result<Vec<Created>, AbiError> {
        self.create_batch(&new_tasks(tasks_json)?)
    }

    fn create_batch(&self, batch: &[(NewTask, Start)]) -> Result<Vec<Created>, AbiError> {
        Ok(self.block_on(async {
            let (created, changed) =
                tasker_store::task::create_batch(&self.pool, &self.templates, batch, &self.id)
                    .await?;
            self.wakeups.announce(&changed);
            Ok::<_, tasker_store::StoreError>(created)
        })?)
    }

    /// A task with its steps and edges, as JSON (the shape of `GET /v1/tasks/{id}`).
    pub fn get_task(&self, task_id: Uuid) -> Result<serde_json::Value, AbiError> {
        let detail = self.block_on(tasker_store::task::detail(&self.pool, task_id))?;
        serde_json::to_value(detail).map_err(|e| AbiError::Internal(e.to_string()))
    }

    /// Waits up to `timeout` for the task to settle (a terminal state, or
    /// `blocked_by_failures`); returns that state. [`AbiError::Timeout`] names
    /// the state it was still in.
    pub fn wait_task(&self, task_id: Uuid, timeout: Duration) -> Result<TaskState, AbiError> {
        self.block_on(async {
            let watcher = self
                .watcher
                .get_or_try_init(|| TaskWatcher::start(&self.wakeups))
                .await
                .map_err(|e| AbiError::Database(e.to_string()))?;
            watcher.wait(task_id, timeout).await.map_err(|e| match e {
                WaitError::NotFound(_) => AbiError::NotFound(e.to_string()),
                WaitError::Timeout { .. } => AbiError::Timeout(e.to_string()),
                _ => AbiError::Database(e.to_string()),
            })
        })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        let dispatch = crate::log::dispatch();
        tracing::dispatcher::with_default(&dispatch, || self.runtime.block_on(f))
    }
}

impl Drop for DatabaseClient {
    fn drop(&mut self) {
        // Close the pool and stop the watcher's listener while the runtime runs.
        let db = self.db.take();
        let watcher = self.watcher.take();
        if tokio::runtime::Handle::try_current().is_err() {
            self.runtime.block_on(async move {
                drop(watcher);
                if let Some(db) = db {
                    db.close().await;
                }
            });
        }
    }
}

/// The requests of a batch, with their starts, from JSON text (see
/// [`DatabaseClient::create_tasks_json`]).
fn new_tasks(tasks_json: &str) -> Result<Vec<(NewTask, Start)>, AbiError> {
    let serde_json::Value::Array(items) = crate::handler::json_exact(tasks_json, "tasks")? else {
        return Err(AbiError::InvalidArgument(
            "tasks must be a JSON array of task objects".into(),
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            // The start's keys are taken out first (NewTask refuses unknown
            // keys), one at a time so that an error names its key.
            let mut start = Start::default();
            if let Some(fields) = item.as_object_mut() {
                for key in ["run_at", "delay_seconds"] {
                    let Some(value) = fields.remove(key) else {
                        continue;
                    };
                    let one = serde_json::from_value::<Start>(serde_json::json!({ key: value }))
                        .map_err(|e| AbiError::InvalidArgument(format!("tasks[{i}].{key}: {e}")))?;
                    start.run_at = start.run_at.or(one.run_at);
                    start.delay_seconds = start.delay_seconds.or(one.delay_seconds);
                }
            }
            let request = serde_json::from_value::<NewTask>(item)
                .map_err(|e| AbiError::InvalidArgument(format!("tasks[{i}]: {e}")))?;
            Ok((request, start))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(json: &str) -> String {
        new_tasks(json).unwrap_err().to_string()
    }

    #[test]
    fn batch_items_carry_their_requests_and_starts() {
        let batch = new_tasks(
            r#"[{"namespace": "n", "name": "a", "priority": 3, "run_at": "2027-01-01T00:00:00Z"},
                {"namespace": "n", "name": "b", "delay_seconds": 5},
                {"namespace": "n", "name": "c", "run_at": null}]"#,
        )
        .unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!((batch[0].0.name.as_str(), batch[0].0.priority), ("a", 3));
        assert_eq!(
            batch[0].1.run_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2027-01-01T00:00:00+00:00")
        );
        assert_eq!(batch[1].1.delay_seconds, Some(5));
        assert_eq!(batch[2].1, Start::default());
    }

    #[test]
    fn a_bad_batch_item_is_named_with_its_key() {
        assert!(refusal(r#"{"namespace": "n"}"#).contains("JSON array"));
        assert!(refusal("[").contains("not valid JSON"));
        assert!(refusal(r#"[{"namespace": "n", "name": "a"}, 7]"#).starts_with("tasks[1]: "));
        let e = refusal(r#"[{"namespace": "n", "name": "a", "run_at": "soon"}]"#);
        assert!(e.starts_with("tasks[0].run_at: "), "{e}");
        let e = refusal(r#"[{"namespace": "n", "name": "a", "delay_seconds": -1}]"#);
        assert!(e.starts_with("tasks[0].delay_seconds: "), "{e}");
        let e = refusal(r#"[{"namespace": "n", "name": "a", "colour": "red"}]"#);
        assert!(e.contains("tasks[0]: unknown field `colour`"), "{e}");
    }
}
