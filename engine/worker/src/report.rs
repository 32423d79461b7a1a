//! The worker's reporter: outcomes of finished attempts, batched, reported
//! one statement per queue; with `apply_successes`, the successes applied in
//! the same commit (`tasker_store::step::report_and_apply_on`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::PgPool;
use uuid::Uuid;

use super::WorkerSettings;
use tasker_model::channel::Sender;
use tasker_model::state::TaskState;
use tasker_model::step::log::AttemptLines;
use tasker_model::step::StepResultMessage;
use tasker_notify::Wakeups;
use tasker_store::db::HeldConnection;
use tasker_store::step_log::AttemptLogRow;

/// An outcome waiting to be reported.
pub(super) struct Report {
    pub queue: String,
    pub msg_id: i64,
    pub result: StepResultMessage,
    /// What the handler logged during the attempt (often nothing).
    pub log: AttemptLines,
}

impl Report {
    /// Takes the attempt's log as a row to store, if it logged anything.
    fn take_log_row(&mut self) -> Option<AttemptLogRow> {
        (!self.log.is_empty()).then(|| AttemptLogRow {
            step_id: self.result.step_id,
            task_id: self.result.task_id,
            attempt: self.result.attempt,
            worker_id: self.result.worker_id.clone(),
            lines: std::mem::take(&mut self.log),
        })
    }
}

/// Where a report goes, shared by every report of one reporter.
struct Reporter<'a> {
    wakeups: &'a Wakeups,
    settings: &'a WorkerSettings,
    /// Tasks a success applied here finished or blocked (logged, their
    /// latency recorded: `tasker_store::analytics::observe_finished`).
    finished: Sender<(Uuid, TaskState)>,
}

/// The worker's reporter: takes the first outcome, then whatever else has
/// piled up (up to `MAX_REPORT_BATCH`), and reports them one statement per
/// queue, preceded by one statement storing the batch's handler logs when
/// some attempt logged anything. Under load this turns many small commits
/// into a few; when idle a batch is one outcome and nothing waits. Ends when
/// every sender is gone.
pub(super) async fn report_outcomes(
    pool: PgPool,
    wakeups: Wakeups,
    mut inbox: tokio::sync::mpsc::Receiver<Report>,
    settings: Arc<WorkerSettings>,
) {
    const MAX_REPORT_BATCH: usize = 64;
    let (finished, finished_inbox) = tasker_model::channel::bounded(
        "worker.finished",
        settings.results_buffer.max(1),
        settings.saturation_warn_percent,
    );
    tokio::spawn(tasker_store::analytics::observe_finished(
        pool.clone(),
        finished_inbox,
    ));
    let reporter = Reporter {
        wakeups: &wakeups,
        settings: &settings,
        finished,
    };
    let mut conn = HeldConnection::new(pool.clone());
    while let Some(first) = conn.wait_idle(inbox.recv()).await {
        let mut by_queue: std::collections::BTreeMap<String, Vec<(i64, StepResultMessage)>> =
            Default::default();
        let mut logs = Vec::new();
        let mut next = Some(first);
        let mut n = 0;
        while let Some(mut r) = next.take() {
            logs.extend(r.take_log_row());
            by_queue
                .entry(r.queue)
                .or_default()
                .push((r.msg_id, r.result));
            n += 1;
            if n < MAX_REPORT_BATCH {
                next = inbox.try_recv().ok();
            }
        }
        for (queue, outcomes) in by_queue {
            // The logs go with the first queue's report: one statement for all.
            let logs = std::mem::take(&mut logs);
            reporter
                .report_with_retries(&mut conn, &queue, &outcomes, &logs)
                .await;
        }
    }
}

/// Reports one outcome without the reporter (it is gone: it never stops
/// before the steps, so this is for a step finishing during shutdown).
pub(super) async fn report_alone(
    pool: &PgPool,
    wakeups: &Wakeups,
    settings: &WorkerSettings,
    mut r: Report,
) {
    // No observer: a task this finishes is logged by nobody but its events.
    let (finished, _) = tasker_model::channel::bounded("worker.finished", 1, 100);
    let reporter = Reporter {
        wakeups,
        settings,
        finished,
    };
    let logs: Vec<AttemptLogRow> = r.take_log_row().into_iter().collect();
    reporter
        .report_with_retries(
            &mut HeldConnection::new(pool.clone()),
            &r.queue,
            &[(r.msg_id, r.result)],
            &logs,
        )
        .await;
}

impl Reporter<'_> {
    /// Reports with a few retries; if it still fails the lease runs out and
    /// the step runs again elsewhere (at-least-once). `logs` (the handler logs
    /// of these attempts, or more) are stored first, in one statement, when
    /// there are any; logs that cannot be stored for another reason than an
    /// outage are dropped with a warning rather than holding the outcomes back.
    async fn report_with_retries(
        &self,
        conn: &mut HeldConnection,
        queue: &str,
        outcomes: &[(i64, StepResultMessage)],
        mut logs: &[AttemptLogRow],
    ) {
        let wakeups = self.wakeups;
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        while attempt < 5 {
            let reported = match conn.get().await {
                Ok(c) => match tasker_store::step_log::record(c, logs).await {
                    Ok(_) => {
                        logs = &[];
                        self.report(c, queue, outcomes).await
                    }
                    Err(e) if wakeups.database().report(&e) => Err(e),
                    Err(e) => {
                        tracing::warn!(error = %e, attempts = logs.len(), "storing handler logs failed; they are dropped");
                        logs = &[];
                        self.report(c, queue, outcomes).await
                    }
                },
                Err(e) => Err(e.into()),
            };
            match reported {
                Ok(()) => return,
                Err(e) => {
                    conn.release();
                    if wakeups.database().report(&e) {
                        // Not an attempt: the outcomes wait for the database (a
                        // lease that runs out meanwhile makes them stale, no more).
                        wakeups.database().wait_up().await;
                        continue;
                    }
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, outcomes = outcomes.len(), "reporting step outcomes failed");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        tracing::error!(
            outcomes = outcomes.len(),
            "giving up reporting; those steps will run again after their lease"
        );
    }

    /// One report, and what follows its commit: the wake-ups, and for each
    /// success applied here its span and, when it finished the task, the
    /// task's observation.
    async fn report(
        &self,
        conn: &mut sqlx::PgConnection,
        queue: &str,
        outcomes: &[(i64, StepResultMessage)],
    ) -> Result<(), tasker_store::StoreError> {
        let worker_id = &self.settings.worker_id;
        if !self.settings.apply_successes {
            let changed =
                tasker_store::step::report_batch_on(conn, queue, outcomes, worker_id).await?;
            self.wakeups.announce(&changed);
            return Ok(());
        }
        let at = SystemTime::now();
        let (changed, applied) =
            tasker_store::step::report_and_apply_on(conn, queue, outcomes, worker_id).await?;
        self.wakeups.announce(&changed);
        for (msg, done) in applied {
            let task = done.task_state();
            tasker_trace::result_applied(&msg, Ok((done.label(), task)), at);
            if let Some(state) =
                task.filter(|s| s.is_terminal() || *s == TaskState::BlockedByFailures)
            {
                self.finished.try_send_or_drop((msg.task_id, state));
            }
        }
        Ok(())
    }
}
