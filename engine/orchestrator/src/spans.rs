//! The orchestrator's spans in a task's trace: applying a step's result (a
//! child of the attempt's span, whose `traceparent` the result carries) and,
//! when that result finished the task, the task's end.

use std::time::SystemTime;

use tasker_model::state::TaskState;
use tasker_model::step::StepResultMessage;
use tasker_store::result::Processed;
use tasker_store::StoreError;
use tasker_trace::{KeyValue, Span, SpanKind};

/// Records the span of applying `msg` (taken at `taken_at`), and the task's
/// end when it finished the task.
pub(crate) fn result_applied(
    msg: &StepResultMessage,
    outcome: &Result<Processed, StoreError>,
    taken_at: SystemTime,
) {
    let mut span = Span::start_at(
        "tasker.step.result",
        SpanKind::Internal,
        msg.traceparent.as_deref(),
        || {
            vec![
                KeyValue::new("tasker.task_id", msg.task_id.to_string()),
                KeyValue::new("tasker.step_id", msg.step_id.to_string()),
                KeyValue::new("tasker.attempt", i64::from(msg.attempt)),
                KeyValue::new("tasker.worker_id", msg.worker_id.clone()),
            ]
        },
        taken_at,
    );
    let processed = match outcome {
        Ok(p) => p,
        Err(e) => {
            span.fail(e.to_string());
            return span.end();
        }
    };
    let (what, task) = match processed {
        Processed::Stale => ("stale", None),
        Processed::Completed { task, .. } => ("completed", Some(*task)),
        Processed::RetryScheduled { task, .. } => ("retry_scheduled", Some(*task)),
        Processed::Failed { task } => ("failed", Some(*task)),
    };
    span.set(KeyValue::new("tasker.result", what));
    if let Some(task) = task {
        span.set(KeyValue::new("tasker.task_state", task.to_string()));
    }
    let finished = task.filter(|t| t.is_terminal() || *t == TaskState::BlockedByFailures);
    if let Some(state) = finished {
        let mut end = Span::start(
            "tasker.task.finish",
            SpanKind::Internal,
            Some(span.traceparent()),
            || {
                vec![
                    KeyValue::new("tasker.task_id", msg.task_id.to_string()),
                    KeyValue::new("tasker.task_state", state.to_string()),
                ]
            },
        );
        if state != TaskState::Complete {
            end.fail(format!("the task ended {state}"));
        }
        end.end();
    }
    span.end();
}
