//! The span of applying a step's result (a child of the attempt's span, whose
//! `traceparent` the result carries) and, when that result finished the task,
//! the task's end. Recorded by whoever applied the result: the orchestrator,
//! or the worker that applied its own success.

use std::time::SystemTime;

use tasker_model::state::TaskState;
use tasker_model::step::StepResultMessage;

use crate::{KeyValue, Span, SpanKind};

/// What applying a result did: a word for it (`completed`, `stale`, ...) and
/// the task's state after it, or why applying it failed.
pub type Applied<'a> = Result<(&'a str, Option<TaskState>), String>;

/// Records the span of applying `msg` (begun at `taken_at`), and the task's
/// end when it finished the task.
pub fn result_applied(msg: &StepResultMessage, applied: Applied<'_>, taken_at: SystemTime) {
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
    let (what, task) = match applied {
        Ok(done) => done,
        Err(e) => {
            span.fail(e);
            return span.end();
        }
    };
    span.set(KeyValue::new("tasker.result", what.to_string()));
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
