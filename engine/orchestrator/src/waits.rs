//! The wait sweep (`docs/waits.md`): steps waiting for a signal or a time
//! whose wake-up is due are woken with the due retries, at every tick of
//! `orchestration.retry_sweep_interval_ms` (`tasker_store::wait`). Nothing is
//! held in memory: a wait survives any restart as its row, and whichever
//! orchestrator sweeps first wakes it, once (under its task's row lock).

use sqlx::PgPool;

use tasker_notify::Wakeups;
use tasker_store::wait;

/// Steps looked at per sweep, at most; the next tick takes the rest.
const WAKE_BATCH: i64 = 500;

/// Wakes the due waiting steps and announces what changed.
pub(super) async fn wake_due(pool: &PgPool, wakeups: &Wakeups, processor_id: &str) {
    match wait::wake_all_due(pool, WAKE_BATCH, processor_id).await {
        Ok((woken, changed)) => {
            wakeups.announce(&changed);
            if woken.timed_out > 0 {
                tracing::info!(timed_out = woken.timed_out, "signal waits timed out");
            }
        }
        Err(e) if wakeups.database().report(&e) => {}
        Err(e) => tracing::warn!(error = %e, "waking waiting steps failed; will retry"),
    }
}
