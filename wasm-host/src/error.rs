//! Errors: why a component was refused ([`LoadError`]) and why a call
//! returned no result ([`CallError`], [`Limit`]).

use std::time::Duration;

use crate::contract::HANDLER_EXPORT;

/// Why a component was refused or could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component (a core module or other bytes)")]
    NotAComponent,
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error("the component imports `{name}`, which is outside the contract (allowed: tasker:handler/{{log,trace}}@0.1.x and wasi:{{io,clocks,random,cli,filesystem,sockets}}/*@0.2.x)")]
    ForbiddenImport { name: String },
    #[error("the component does not export `{HANDLER_EXPORT}` with the contract's types: {0}")]
    Export(String),
    #[error("the component's imports cannot be linked: {0}")]
    Link(String),
    #[error("host setup failed: {0}")]
    Host(String),
}

/// Which store limit a guest hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Memory,
    Table,
    Instances,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Memory => "memory",
            Limit::Table => "table",
            Limit::Instances => "instances",
        })
    }
}

/// Why a call did not return a result. Each variant is one distinct cause.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The per-call deadline passed (the epoch interrupt stopped the guest).
    #[error("the guest ran past its deadline of {0:?} and was interrupted")]
    Deadline(Duration),
    /// The call was cancelled by the caller.
    #[error("the call was cancelled")]
    Cancelled,
    /// A store limit refused a request.
    #[error("the guest hit the {limit} limit: {detail}")]
    Limit { limit: Limit, detail: String },
    /// The result is larger than `max_result_bytes`.
    #[error("the guest returned {size} bytes, more than the cap of {cap} bytes")]
    ResultTooLarge { size: usize, cap: usize },
    /// The guest trapped (a panic, `unreachable`, out-of-bounds access, exit, ...).
    #[error("the guest trapped: {0}")]
    Trap(String),
    /// The host has no free instance slot right now (retry later).
    #[error("no free instance slot: {0}")]
    Capacity(String),
}
