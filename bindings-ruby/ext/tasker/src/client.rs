//! `Tasker::Native::Client`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use magnus::prelude::*;
use magnus::{function, method, Error, RModule, Ruby};
use tasker::AbiError;
use tasker_store::task::NewTask;
use uuid::Uuid;

use crate::nogvl::{self, POLL};
use crate::worker::{config, seconds};
use crate::{abi_error, invalid};

#[magnus::wrap(class = "Tasker::Native::Client", free_immediately, size)]
pub struct RbClient(Option<tasker::DatabaseClient>);

impl Drop for RbClient {
    fn drop(&mut self) {
        // Closing the pool waits on the network: not inside the GC.
        if let Some(client) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("tasker-rb-free".into())
                .spawn(move || drop(client));
        }
    }
}

fn task_id(ruby: &Ruby, id: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(id).map_err(|e| invalid(ruby, format!("{id:?} is not a task id: {e}")))
}

impl RbClient {
    fn new(ruby: &Ruby, toml: Option<String>, database_url: Option<String>) -> Result<Self, Error> {
        let config = config(ruby, toml, database_url)?;
        let client = nogvl::blocking(ruby, move |_| tasker::DatabaseClient::new(&config))?
            .map_err(|e| abi_error(ruby, e))?;
        Ok(RbClient(Some(client)))
    }

    fn client(&self, ruby: &Ruby) -> Result<&tasker::DatabaseClient, Error> {
        // Only `Drop` takes it, so this always finds it.
        self.0
            .as_ref()
            .ok_or_else(|| Error::new(ruby.exception_runtime_error(), "the client was freed"))
    }

    fn register_template(ruby: &Ruby, rb_self: &Self, text: String) -> Result<String, Error> {
        let client = rb_self.client(ruby)?;
        nogvl::blocking(ruby, |_| client.register_template(&text))?.map_err(|e| abi_error(ruby, e))
    }

    /// Creates a task; returns `[task_id, created]` (`created` is false when an
    /// idempotency key matched an existing task).
    // magnus binds the Ruby method's positional arguments one to one.
    #[allow(clippy::too_many_arguments)]
    fn create_task(
        ruby: &Ruby,
        rb_self: &Self,
        namespace: String,
        name: String,
        context_json: String,
        version: Option<String>,
        idempotency_key: Option<String>,
        priority: i32,
    ) -> Result<(String, bool), Error> {
        let client = rb_self.client(ruby)?;
        // Refused, naming the path, when it holds what tasker cannot store
        // exactly (an Integer beyond 64 bits, NaN, ...).
        let context = tasker::handler::json_exact(&context_json, "context")
            .map_err(|e| abi_error(ruby, e))?;
        let request = NewTask {
            namespace,
            name,
            version,
            context,
            priority,
            idempotency_key,
            traceparent: None,
        };
        let created = nogvl::blocking(ruby, |_| client.create_task(&request))?
            .map_err(|e| abi_error(ruby, e))?;
        Ok((created.task_id.to_string(), created.created))
    }

    /// Creates the tasks of `tasks_json` (a JSON array of task objects) in
    /// one transaction, all or none; returns `[task_id, created]` per task.
    fn create_tasks(
        ruby: &Ruby,
        rb_self: &Self,
        tasks_json: String,
    ) -> Result<Vec<(String, bool)>, Error> {
        let client = rb_self.client(ruby)?;
        let created = nogvl::blocking(ruby, |_| client.create_tasks_json(&tasks_json))?
            .map_err(|e| abi_error(ruby, e))?;
        Ok(created
            .into_iter()
            .map(|c| (c.task_id.to_string(), c.created))
            .collect())
    }

    /// The task with its steps and edges, as JSON text.
    fn get_task(ruby: &Ruby, rb_self: &Self, id: String) -> Result<String, Error> {
        let client = rb_self.client(ruby)?;
        let id = task_id(ruby, &id)?;
        let task =
            nogvl::blocking(ruby, |_| client.get_task(id))?.map_err(|e| abi_error(ruby, e))?;
        Ok(task.to_string())
    }

    /// Waits up to `timeout` seconds for the task to settle; returns its state.
    /// Waits in short slices so Ctrl-C interrupts it.
    fn wait(ruby: &Ruby, rb_self: &Self, id: String, timeout: f64) -> Result<String, Error> {
        let client = rb_self.client(ruby)?;
        let id = task_id(ruby, &id)?;
        let deadline = Instant::now() + seconds(ruby, timeout)?;
        loop {
            let got = nogvl::without_gvl(ruby, |interrupted| loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match client.wait_task(id, left.min(POLL * 4)) {
                    Err(AbiError::Timeout(_))
                        if !left.is_zero() && !interrupted.load(Ordering::SeqCst) =>
                    {
                        continue
                    }
                    Err(AbiError::Timeout(_)) if !left.is_zero() => return None,
                    other => return Some(other),
                }
            })?;
            match got.flatten() {
                Some(Ok(state)) => return Ok(state.as_str().to_string()),
                Some(Err(AbiError::Timeout(message))) => {
                    return Err(abi_error(
                        ruby,
                        AbiError::Timeout(format!(
                            "task {id} did not settle within {timeout}s: {message}"
                        )),
                    ))
                }
                Some(Err(e)) => return Err(abi_error(ruby, e)),
                // Interrupted: let Ruby handle it (a signal usually raises), then go on.
                None => ruby.thread_check_ints()?,
            }
        }
    }
}

pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Client", ruby.class_object())?;
    class.define_singleton_method("new", function!(RbClient::new, 2))?;
    class.define_method("register_template", method!(RbClient::register_template, 1))?;
    class.define_method("create_task", method!(RbClient::create_task, 6))?;
    class.define_method("create_tasks", method!(RbClient::create_tasks, 1))?;
    class.define_method("get_task", method!(RbClient::get_task, 1))?;
    class.define_method("wait", method!(RbClient::wait, 2))?;
    Ok(())
}
