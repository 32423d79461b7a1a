//! The concurrency sweep (`docs/flow-control.md`, "Concurrency limits"):
//! at every tick of `orchestration.retry_sweep_interval_ms`, admits the
//! waiting tasks and held steps of every group with a free slot
//! (`tasker_store::concurrency::sweep`). Admissions normally happen as slots
//! free (a result taken, a cancel); the sweep makes what those paths missed
//! (a crash between a task's creation and its admission, a resumed pause, a
//! delayed start come due) heal by itself. Nothing is held in memory.

use sqlx::PgPool;

use tasker_notify::Wakeups;
use tasker_store::concurrency;

/// Groups of each kind (tasks, steps) looked at per sweep; the next tick
/// takes the rest.
const SWEEP_GROUPS: i64 = 500;

/// Admits what fits and announces what changed.
pub(super) async fn admit(pool: &PgPool, wakeups: &Wakeups, processor_id: &str) {
    match concurrency::sweep(pool, SWEEP_GROUPS, processor_id).await {
        Ok((swept, changed)) => {
            wakeups.announce(&changed);
            if swept.enqueued > 0 {
                tracing::debug!(
                    groups = swept.groups,
                    enqueued = swept.enqueued,
                    "concurrency sweep admitted held work"
                );
            }
        }
        Err(e) if wakeups.database().report(&e) => {}
        Err(e) => tracing::warn!(error = %e, "concurrency sweep failed; will retry"),
    }
}
