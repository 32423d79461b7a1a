//! The error kinds a failed attempt records ([`StepError::kind`](super::StepError::kind)): the same
//! string for the same situation whatever runtime ran the handler (Rust, C,
//! WASM, Python, Ruby). `docs/error-kinds.md` has the table: kind, retried or
//! not, who records it, what it means. The language bindings take these
//! strings from here (Python `tasker._tasker.KIND_*`, Ruby
//! `Tasker::Native::ErrorKind`).

/// The handler reported the failure itself, retryable or not as it said:
/// a Rust `Err(StepError)`, Python `RetryableError`/`PermanentError`, Ruby
/// `Tasker::RetryableError`/`Tasker::PermanentError`, C `tasker_step_fail`
/// (or a push callback returning non-zero without an outcome), a WASM
/// guest's `err(step-error)`.
pub const HANDLER: &str = "handler";
/// The handler failed in a way it did not report: an uncaught exception
/// (Python, Ruby) or a panic (Rust). Retryable.
pub const EXCEPTION: &str = "exception";
/// The handler's return value cannot be stored as it is: it is not JSON
/// (or cannot be serialized to JSON), or it holds a value JSON cannot
/// carry exactly (see [`super::parse_json_exact`]). Not retried.
pub const RESULT: &str = "result";
/// The handler ended without giving the step an outcome: a C push callback
/// returned 0 without one (not retried), or a pulled step was freed or
/// dropped without one (retryable).
pub const NO_OUTCOME: &str = "no_outcome";
/// No handler of the step's name on the worker that took it (nor, with
/// WASM, an uploaded component of that name and version). Not retried.
pub const NO_HANDLER: &str = "no_handler";
/// No live worker of the step's pool could run it (none that has its
/// handler heartbeated) for `orchestration.unserved_step_timeout_seconds`;
/// recorded by the orchestrator. Not retried.
pub const NO_WORKER: &str = "no_worker";
/// The attempt ran past the step's `timeout_seconds`. Retryable.
pub const TIMEOUT: &str = "timeout";
/// The attempt was abandoned: its task was cancelled or the worker is
/// stopping. Retryable.
pub const CANCELLED: &str = "cancelled";
/// A lease expired on the last allowed attempt (its worker died or
/// stalled), so no attempt is left. Not retried.
pub const ATTEMPTS_EXHAUSTED: &str = "attempts_exhausted";
/// The step's worker was lost (its lease expired: killed, stalled, or
/// stopped past its grace) more than `worker.max_recoveries` times, so it
/// is not started again: the step may be what kills its workers. Not retried.
pub const WORKER_LOST: &str = "worker_lost";
/// A fault of tasker itself around the handler (a bug, or a resource it
/// ran out of); the message says which. Retryable.
pub const INTERNAL: &str = "internal";
/// A WASM component could not be loaded or compiled: retryable when the
/// database or the host failed, not retried when the component is bad.
pub const WASM_LOAD: &str = "wasm_load";
/// A WASM guest trapped (panic, `unreachable`, out-of-bounds, `exit`). Not
/// retried: a fresh instance with the same input traps the same way.
pub const WASM_TRAP: &str = "wasm_trap";
/// A WASM guest hit a memory, table or instance limit (`[wasm]`). Not retried.
pub const WASM_LIMIT: &str = "wasm_limit";
/// A WASM guest's result is larger than `wasm.max_result_bytes`. Not retried.
pub const WASM_RESULT_TOO_LARGE: &str = "wasm_result_too_large";
/// No free WASM instance slot (`wasm.max_concurrent_calls`). Retryable.
pub const WASM_CAPACITY: &str = "wasm_capacity";

/// A step waiting for a signal (`wait_for`) did not receive it within its
/// `timeout`; recorded by the orchestrator. Not retried (`tasker step retry`
/// waits again).
pub const SIGNAL_TIMEOUT: &str = "signal_timeout";

/// Every kind, in the order of `docs/error-kinds.md`.
pub const ALL: &[&str] = &[
    HANDLER,
    EXCEPTION,
    RESULT,
    NO_OUTCOME,
    NO_HANDLER,
    NO_WORKER,
    TIMEOUT,
    CANCELLED,
    ATTEMPTS_EXHAUSTED,
    WORKER_LOST,
    INTERNAL,
    WASM_LOAD,
    WASM_TRAP,
    WASM_LIMIT,
    WASM_RESULT_TOO_LARGE,
    WASM_CAPACITY,
    SIGNAL_TIMEOUT,
];
