//! The schedule tick: every orchestrator fires due schedules about once per
//! `orchestration.schedule_tick_interval_ms`. Each tick fires exactly once
//! however many run (`tasker_store::schedule::fire_due`), so there is no
//! leader to elect and none to lose.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use tasker_notify::Wakeups;
use tasker_store::schedule;
use tasker_store::template::TemplateCache;

/// Schedules fired in one transaction at most; more due wait for the next tick.
const SCHEDULES_PER_TICK: i64 = 100;

/// Fires due schedules every `every` until `shutdown`; announces the new
/// tasks' queues after each commit and counts each fire in
/// `tasker_schedule_fires_total{namespace}`.
pub(crate) async fn run(
    pool: PgPool,
    wakeups: Wakeups,
    templates: TemplateCache,
    processor_id: String,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut t = tokio::time::interval(every.max(Duration::from_millis(10)));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = t.tick() => {}
        }
        // While the database is down the tick is skipped; the ticks missed
        // then fire by each schedule's catch-up policy once it is back.
        if !wakeups.database().is_up() {
            continue;
        }
        match schedule::fire_due(&pool, &templates, &processor_id, SCHEDULES_PER_TICK).await {
            Ok(fired) => {
                wakeups.announce(&fired.changed);
                for (namespace, schedule_id, tick, task_id) in &fired.tasks {
                    tasker_model::telemetry::record_schedule_fire(namespace);
                    tracing::info!(%schedule_id, %tick, %task_id, "schedule fired");
                }
            }
            Err(e) => {
                if !wakeups.database().report(&e) {
                    tracing::warn!(error = %e, "firing due schedules failed");
                }
            }
        }
    }
}
