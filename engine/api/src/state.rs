//! What every route shares: [`ApiState`] (pool, wake-ups, template cache,
//! auth mode, limits, the task watcher, WASM uploads) built from the
//! configuration.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tasker_config::TaskerConfig;
use tasker_notify::watch::TaskWatcher;
use tasker_notify::Wakeups;
use tasker_store::template::TemplateCache;

use crate::components;
use crate::event_slots::EventSlots;

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// No key needed (explicit configuration only; logged as a warning).
    Disabled,
    /// `Authorization: Bearer <key>` with a stored key or the bootstrap key.
    Keys { bootstrap: Option<String> },
}

/// Everything a route needs.
#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    /// This process's wake-ups: what a route commits is announced here.
    pub wakeups: Wakeups,
    pub templates: TemplateCache,
    pub auth: AuthMode,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Time limit of one request.
    pub request_timeout: Duration,
    /// The one task watcher of this server (one LISTEN connection for every
    /// event stream), started by the first stream.
    pub watcher: Arc<tokio::sync::OnceCell<TaskWatcher>>,
    /// WASM component uploads (`[wasm]`).
    pub components: components::ComponentUploads,
    /// Refuse templates and tasks with steps no live worker serves
    /// (`web.require_live_workers`).
    pub require_live_workers: bool,
    /// Bytes of contexts or results one listing carries
    /// (`web.list_payload_limit_bytes`).
    pub list_payload_limit_bytes: u64,
    /// Open event streams, capped (`web.max_event_streams*`).
    pub event_slots: EventSlots,
    /// `/metrics` needs a key (`web.metrics_requires_key`).
    pub metrics_requires_key: bool,
    /// The ages of `POST /v1/retention/run` (`[retention]`).
    pub retention: tasker_store::retention::RetentionPolicy,
    /// Its default batch size (`retention.batch_size`).
    pub retention_batch_size: u32,
    /// Which steps of a template no live worker serves, as recently answered
    /// (task creation reuses it for a second).
    pub(crate) unserved: crate::routes::workers::UnservedCache,
}

impl ApiState {
    /// State from the `[web]` configuration.
    pub fn from_config(pool: PgPool, wakeups: Wakeups, config: &TaskerConfig) -> Self {
        crate::routes::templates::configure(&config.templates);
        let web = &config.web;
        let auth = if web.auth.enabled {
            AuthMode::Keys {
                bootstrap: web
                    .auth
                    .bootstrap_key
                    .as_ref()
                    .map(|s| s.expose().to_string()),
            }
        } else {
            AuthMode::Disabled
        };
        ApiState {
            pool,
            wakeups,
            templates: TemplateCache::default(),
            auth,
            body_limit_bytes: usize::try_from(web.request_body_limit_bytes).unwrap_or(usize::MAX),
            request_timeout: Duration::from_millis(web.request_timeout_ms),
            watcher: Arc::default(),
            components: components::ComponentUploads::new(
                config.wasm.enabled,
                usize::try_from(config.wasm.max_component_bytes).unwrap_or(usize::MAX),
                tasker_worker::handler::wasm::host_config(&config.wasm),
            ),
            require_live_workers: web.require_live_workers,
            list_payload_limit_bytes: web.list_payload_limit_bytes,
            event_slots: EventSlots::new(web.max_event_streams, web.max_event_streams_per_key),
            metrics_requires_key: web.metrics_requires_key,
            retention: tasker_store::retention::RetentionPolicy::from_config(&config.retention),
            retention_batch_size: config.retention.batch_size,
            unserved: Default::default(),
        }
    }

    /// The shared task watcher, started on first use.
    pub async fn watcher(&self) -> Result<&TaskWatcher, sqlx::Error> {
        self.watcher
            .get_or_try_init(|| TaskWatcher::start(&self.wakeups))
            .await
    }
}
