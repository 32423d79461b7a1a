//! The handler registry: how a worker finds the code that runs a step.
//!
//! A [`Handler`] runs one attempt. Handlers are found by name, first among
//! those registered directly (in-process Rust handlers, C push callbacks),
//! then by asking each [`HandlerSource`] in order (the WASM backend resolves
//! uploaded components this way). Every backend plugs in through these two
//! traits; the worker host knows nothing else about them.

pub mod examples;
pub mod rust;
#[cfg(feature = "wasm")]
pub mod wasm;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use tasker_model::step::{Outcome, StepContext};

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// Runs one attempt of a step. `cancel` fires when the task was cancelled or
/// the worker is shutting down; a handler should stop soon after.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, ctx: StepContext, cancel: CancellationToken) -> HandlerFuture;
    /// Backend name for logs and metrics (`rust`, `wasm`, `c`, ...).
    fn backend(&self) -> &'static str;
}

/// A backend that finds handlers on demand (e.g. uploaded WASM components).
pub trait HandlerSource: Send + Sync + 'static {
    fn resolve(&self, name: &str, version: Option<&str>) -> Option<Arc<dyn Handler>>;
}

/// Handlers known to one worker host.
#[derive(Default)]
pub struct HandlerRegistry {
    named: RwLock<HashMap<String, Arc<dyn Handler>>>,
    sources: RwLock<Vec<Arc<dyn HandlerSource>>>,
}

impl HandlerRegistry {
    pub fn new() -> HandlerRegistry {
        HandlerRegistry::default()
    }

    /// Registers (or replaces) the handler for `name`.
    pub fn register(&self, name: impl Into<String>, handler: Arc<dyn Handler>) {
        if let Ok(mut m) = self.named.write() {
            m.insert(name.into(), handler);
        }
    }

    /// Adds a backend asked, in order, for names not registered directly.
    pub fn add_source(&self, source: Arc<dyn HandlerSource>) {
        if let Ok(mut s) = self.sources.write() {
            s.push(source);
        }
    }

    /// Finds the handler for `name`.
    pub fn resolve(&self, name: &str, version: Option<&str>) -> Option<Arc<dyn Handler>> {
        if let Some(h) = self.named.read().ok().and_then(|m| m.get(name).cloned()) {
            return Some(h);
        }
        let sources = self.sources.read().ok()?.clone();
        sources.iter().find_map(|s| s.resolve(name, version))
    }

    /// Whether any [`HandlerSource`] is added (it may resolve names not
    /// registered directly: uploaded WASM components).
    pub fn has_sources(&self) -> bool {
        self.sources.read().map(|s| !s.is_empty()).unwrap_or(false)
    }

    /// Whether `name` is registered directly.
    pub fn has(&self, name: &str) -> bool {
        self.named
            .read()
            .map(|m| m.contains_key(name))
            .unwrap_or(false)
    }

    /// Names registered directly with their handler's backend, sorted by name.
    pub fn names_and_backends(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<(String, &'static str)> = self
            .named
            .read()
            .map(|m| m.iter().map(|(k, h)| (k.clone(), h.backend())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Names registered directly, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .named
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}
