//! The retention sweep: with `retention.enabled`, every orchestrator deletes
//! finished tasks past their namespace's age every
//! `retention.interval_seconds`, a batch per short transaction
//! (`tasker_store::retention`). Orchestrators sweeping at once skip each
//! other's locked tasks, so there is no leader here either.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use tasker_config::RetentionConfig;
use tasker_notify::Wakeups;
use tasker_store::retention::{self, RetentionPolicy};

/// What an orchestrator's retention sweep does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSweep {
    /// How often it sweeps.
    pub every: Duration,
    /// Tasks deleted per transaction.
    pub batch_size: u32,
    /// The ages.
    pub policy: RetentionPolicy,
}

impl RetentionSweep {
    /// The sweep of `[retention]`; `None` when it is not enabled.
    pub fn from_config(config: &RetentionConfig) -> Option<RetentionSweep> {
        config.enabled.then(|| RetentionSweep {
            every: Duration::from_secs(config.interval_seconds),
            batch_size: config.batch_size,
            policy: RetentionPolicy::from_config(config),
        })
    }
}

/// Sweeps every `sweep.every` until `shutdown` (a sweep in progress is
/// abandoned mid-batch: that batch's transaction rolls back). Logs how many
/// tasks each sweep removed, never one line per task.
pub(crate) async fn run(
    pool: PgPool,
    wakeups: Wakeups,
    sweep: RetentionSweep,
    shutdown: CancellationToken,
) {
    let mut t = tokio::time::interval(sweep.every.max(Duration::from_secs(1)));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = t.tick() => {}
        }
        if !wakeups.database().is_up() {
            continue;
        }
        let started = Instant::now();
        let swept = tokio::select! {
            _ = shutdown.cancelled() => return,
            swept = retention::run(&pool, &sweep.policy, sweep.batch_size, |s| {
                tracing::debug!(tasks = s.last_batch, total = s.tasks, "retention batch");
                ControlFlow::Continue(())
            }) => swept,
        };
        match swept {
            Ok(s) if s.tasks > 0 => {
                tasker_model::telemetry::record_retention_removed(s.tasks);
                tracing::info!(
                    tasks = s.tasks,
                    batches = s.batches,
                    ms = started.elapsed().as_millis() as u64,
                    "retention removed finished tasks"
                );
            }
            Ok(_) => tracing::debug!("retention: nothing to remove"),
            Err(e) => {
                if !wakeups.database().report(&e) {
                    tracing::warn!(error = %e, "retention sweep failed");
                }
            }
        }
    }
}
