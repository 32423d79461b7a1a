//! The worker's circuit breakers (`tasker_model::breaker`): `database` for
//! its claims, and one per handler backend (`handlers.wasm`, `handlers.c`,
//! `handlers.python`, `handlers.ruby`, `handlers.rust`). A backend whose
//! breaker is open is left out of the claim — its steps stay in the queue for
//! another worker instead of being claimed only to expire — and a half-open
//! one lets one step through as the trial.
//!
//! What counts as a backend's failure is what says the backend, not the
//! handler's logic, is in trouble: kinds `internal`, `no_outcome`,
//! `timeout`, `wasm_load` and `wasm_capacity`, when retryable (a component
//! that cannot load is its uploader's problem, not the host's). A handler's
//! own errors (`handler`, `exception`, `result`) count as the backend working.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tasker_model::breaker::{breaker, Breaker, BreakerPolicy};
use tasker_model::step::{kind, Outcome};

use crate::handler::HandlerRegistry;

/// The breakers one worker uses.
pub(crate) struct Breakers {
    pub database: Arc<Breaker>,
    backends: Mutex<BTreeMap<String, Arc<Breaker>>>,
    policy: BreakerPolicy,
    /// The runtime pulled handlers run in (`python`, `ruby`, `c`).
    runtime: String,
}

/// What a claim may take while some backends' breakers are open.
pub(crate) struct Allowed {
    /// Handler names whose backend allows calls.
    pub handlers: Vec<String>,
    /// Whether uploaded WASM components may be claimed.
    pub components: bool,
    /// Half-open breakers whose trial this claim took.
    pub trials: Vec<Arc<Breaker>>,
}

impl Breakers {
    pub fn new(policy: BreakerPolicy, runtime: &str) -> Breakers {
        Breakers {
            database: breaker("database", policy),
            backends: Mutex::default(),
            policy,
            runtime: runtime.to_string(),
        }
    }

    /// The breaker of a handler `backend` (`rust`, `wasm`, `c`, or `pull`:
    /// the worker's runtime).
    pub fn backend(&self, backend: &str) -> Arc<Breaker> {
        let name = match backend {
            "pull" => self.runtime.as_str(),
            other => other,
        };
        let mut backends = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        backends
            .entry(name.to_string())
            .or_insert_with(|| breaker(&format!("handlers.{name}"), self.policy))
            .clone()
    }

    /// Which handlers a claim may take now (see [`Allowed`]).
    pub fn allowed(&self, registry: &HandlerRegistry) -> Allowed {
        let mut verdict: BTreeMap<&'static str, bool> = BTreeMap::new();
        let mut trials = Vec::new();
        let mut ask = |backend: &'static str, trials: &mut Vec<Arc<Breaker>>| {
            *verdict.entry(backend).or_insert_with(|| {
                let b = self.backend(backend);
                let was_half_open = b.state() == tasker_model::breaker::BreakerState::HalfOpen;
                let ok = b.allow();
                if ok && was_half_open {
                    trials.push(b);
                }
                ok
            })
        };
        let handlers = registry
            .names_and_backends()
            .into_iter()
            .filter(|(_, backend)| ask(backend, &mut trials))
            .map(|(name, _)| name)
            .collect();
        let components = registry.has_sources() && ask("wasm", &mut trials);
        Allowed {
            handlers,
            components,
            trials,
        }
    }

    /// Records an attempt's outcome on its backend's breaker.
    pub fn record(&self, backend: &str, outcome: &Outcome) {
        let backend_failed = match outcome {
            Outcome::Success { .. } => false,
            Outcome::Failure(e) => {
                e.retryable
                    && [
                        kind::INTERNAL,
                        kind::NO_OUTCOME,
                        kind::TIMEOUT,
                        kind::WASM_LOAD,
                        kind::WASM_CAPACITY,
                    ]
                    .contains(&e.kind.as_str())
            }
        };
        self.backend(backend).record(!backend_failed);
    }
}
