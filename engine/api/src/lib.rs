//! tasker-api: the HTTP admin API (axum): tasks, steps, templates, components,
//! queues, keys, health, metrics, the OpenAPI spec at `/openapi.json` and its
//! docs page at `/docs`.
//!
//! Invariants: every `/v1` route checks its permission before anything else;
//! request bodies are size-limited before they are read; every error has one
//! shape; writes go through the store and are announced through the server's
//! [`tasker_notify::Wakeups`].
//!
//! Every route is listed once, in [`routes()`], with the permission it needs;
//! the router, the spec's 401 and 403 responses ([`ApiDoc`]) and the OpenAPI
//! completeness test all read that list. Every
//! error is `{"error": code, "message": ..., "details": ...}` ([`error`]).

pub mod error;
pub mod event_slots;
pub mod events;
pub mod extract;
pub mod keys;
pub mod metrics;
pub mod ops;
pub mod routes;
pub mod scope;
pub use tasker_api_types as types;
pub mod components;

mod connections;
mod openapi;
mod request_middleware;
mod route_table;
mod server;
mod state;
mod ui;

pub use openapi::{openapi, ApiDoc};
pub use route_table::{routes, Route};
pub use server::{router, serve, ApiError};
pub use state::{ApiState, AuthMode};
