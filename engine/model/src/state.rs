//! The two state machines: tasks and steps.
//!
//! The legal transitions live here as data ([`TaskState::LEGAL`],
//! [`StepState::LEGAL`]) and nowhere else. [`check_task`] and [`check_step`]
//! turn an illegal one into a typed [`TransitionError`]; the store persists a
//! legal one as a compare-and-set on the current state (see `store::transition`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The state machine has no edge `from -> to`.
    #[error("illegal {machine} transition {from} -> {to}")]
    Illegal {
        machine: &'static str,
        from: String,
        to: String,
    },
    /// The row's state was no longer `expected` when the change was written:
    /// someone else moved it first.
    #[error("{machine} {id} state changed underneath: expected {expected}, found {found}")]
    StateChanged {
        machine: &'static str,
        id: uuid::Uuid,
        expected: String,
        found: String,
    },
    /// A state name read from the database or a request is not a state.
    #[error("unknown {machine} state '{value}'")]
    UnknownState {
        machine: &'static str,
        value: String,
    },
}

macro_rules! state_enum {
    ($(#[$meta:meta])* $name:ident, $machine:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in the database and shown to users.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = TransitionError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(TransitionError::UnknownState { machine: $machine, value: other.to_string() }),
                }
            }
        }
    };
}

state_enum!(
    /// Where a task is in its life.
    TaskState, "task", {
    Pending => "pending",
    Initializing => "initializing",
    EnqueuingSteps => "enqueuing_steps",
    StepsInProcess => "steps_in_process",
    EvaluatingResults => "evaluating_results",
    WaitingForDependencies => "waiting_for_dependencies",
    WaitingForRetry => "waiting_for_retry",
    BlockedByFailures => "blocked_by_failures",
    Complete => "complete",
    Error => "error",
    Cancelled => "cancelled",
    ResolvedManually => "resolved_manually",
});

state_enum!(
    /// Where a workflow step is in its life.
    StepState, "step", {
    Pending => "pending",
    Enqueued => "enqueued",
    InProgress => "in_progress",
    EnqueuedForOrchestration => "enqueued_for_orchestration",
    WaitingForRetry => "waiting_for_retry",
    Complete => "complete",
    Error => "error",
    Cancelled => "cancelled",
    ResolvedManually => "resolved_manually",
    Waiting => "waiting",
});

impl TaskState {
    /// The legal task transitions. Everything not listed is illegal.
    ///
    /// * creation: pending → initializing → enqueuing_steps → steps_in_process
    /// * each result: steps_in_process → evaluating_results → (steps_in_process |
    ///   enqueuing_steps | waiting_for_retry | waiting_for_dependencies |
    ///   blocked_by_failures | complete | error)
    /// * operators: cancel from any non-terminal state; resolve manually from any
    ///   non-terminal state or from `error`; a retry of a failed step revives a
    ///   blocked task (blocked_by_failures → enqueuing_steps).
    pub const LEGAL: &'static [(TaskState, TaskState)] = {
        use TaskState::*;
        &[
            (Pending, Initializing),
            (Initializing, EnqueuingSteps),
            (Initializing, Error),
            (EnqueuingSteps, StepsInProcess),
            (EnqueuingSteps, Error),
            (StepsInProcess, EvaluatingResults),
            (EvaluatingResults, StepsInProcess),
            (EvaluatingResults, EnqueuingSteps),
            (EvaluatingResults, WaitingForRetry),
            (EvaluatingResults, WaitingForDependencies),
            (EvaluatingResults, BlockedByFailures),
            (EvaluatingResults, Complete),
            (EvaluatingResults, Error),
            (WaitingForRetry, EnqueuingSteps),
            (WaitingForRetry, EvaluatingResults),
            (WaitingForDependencies, EvaluatingResults),
            (WaitingForDependencies, EnqueuingSteps),
            (BlockedByFailures, EvaluatingResults),
            (BlockedByFailures, EnqueuingSteps),
            (BlockedByFailures, Error),
            (Pending, Cancelled),
            (Initializing, Cancelled),
            (EnqueuingSteps, Cancelled),
            (StepsInProcess, Cancelled),
            (EvaluatingResults, Cancelled),
            (WaitingForDependencies, Cancelled),
            (WaitingForRetry, Cancelled),
            (BlockedByFailures, Cancelled),
            (Pending, ResolvedManually),
            (Initializing, ResolvedManually),
            (EnqueuingSteps, ResolvedManually),
            (StepsInProcess, ResolvedManually),
            (EvaluatingResults, ResolvedManually),
            (WaitingForDependencies, ResolvedManually),
            (WaitingForRetry, ResolvedManually),
            (BlockedByFailures, ResolvedManually),
            (Error, ResolvedManually),
        ]
    };

    /// No transition leaves a terminal state (except `error → resolved_manually`,
    /// an operator's decision).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Complete
                | TaskState::Error
                | TaskState::Cancelled
                | TaskState::ResolvedManually
        )
    }

    /// The terminal states as a SQL list (see [`sql_list`]):
    /// `'complete', 'error', 'cancelled', 'resolved_manually'`.
    pub fn terminal_sql_list() -> String {
        sql_list(Self::ALL.iter().filter(|s| s.is_terminal()))
    }
}

impl StepState {
    /// The legal step transitions. Everything not listed is illegal.
    ///
    /// * pending → enqueued when its parents are complete; enqueued → in_progress
    ///   when a worker claims it; in_progress → in_progress when the lease ran out
    ///   and another worker reclaims it (a new attempt); in_progress → enqueued
    ///   when the worker hands it back unrun (its handler is not there);
    ///   enqueued → enqueued_for_orchestration when no live worker serves it;
    /// * in_progress → enqueued_for_orchestration when the worker reports;
    ///   the orchestrator then decides complete / waiting_for_retry / error;
    /// * waiting_for_retry → enqueued when the backoff is due;
    /// * a wait step (`wait_for`, `sleep`: no handler) goes pending → waiting
    ///   instead of enqueued, holding no message; waiting →
    ///   enqueued_for_orchestration when its signal arrives or its time is
    ///   up, then complete (or error: a signal's time-out);
    /// * operators: cancel any non-terminal step; retry a failed step
    ///   (error → enqueued, a wait step error → waiting); resolve manually or
    ///   complete manually.
    pub const LEGAL: &'static [(StepState, StepState)] = {
        use StepState::*;
        &[
            (Pending, Enqueued),
            (Enqueued, InProgress),
            (InProgress, InProgress),
            (InProgress, Enqueued),
            (InProgress, EnqueuedForOrchestration),
            (Enqueued, EnqueuedForOrchestration),
            (EnqueuedForOrchestration, Complete),
            (EnqueuedForOrchestration, WaitingForRetry),
            (EnqueuedForOrchestration, Error),
            (WaitingForRetry, Enqueued),
            (Error, Enqueued),
            (Pending, Cancelled),
            (Enqueued, Cancelled),
            (InProgress, Cancelled),
            (EnqueuedForOrchestration, Cancelled),
            (WaitingForRetry, Cancelled),
            (Pending, ResolvedManually),
            (Enqueued, ResolvedManually),
            (InProgress, ResolvedManually),
            (EnqueuedForOrchestration, ResolvedManually),
            (WaitingForRetry, ResolvedManually),
            (Error, ResolvedManually),
            (Pending, Complete),
            (Enqueued, Complete),
            (InProgress, Complete),
            (WaitingForRetry, Complete),
            (Error, Complete),
            (Pending, Waiting),
            (Error, Waiting),
            (Waiting, EnqueuedForOrchestration),
            (Waiting, Cancelled),
            (Waiting, ResolvedManually),
            (Waiting, Complete),
            // A step under a concurrency limit whose retry came due, or that
            // an operator retried, is held (pending, no message) until its
            // group has a free slot (`tasker.enqueue_steps`).
            (WaitingForRetry, Pending),
            (Error, Pending),
        ]
    };

    /// States a step never leaves on its own.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepState::Complete
                | StepState::Error
                | StepState::Cancelled
                | StepState::ResolvedManually
        )
    }

    /// The terminal states as a SQL list (see [`sql_list`]):
    /// `'complete', 'error', 'cancelled', 'resolved_manually'`.
    pub fn terminal_sql_list() -> String {
        sql_list(Self::ALL.iter().filter(|s| s.is_terminal()))
    }

    /// Whether children may treat this step as done.
    pub fn satisfies_dependents(self) -> bool {
        matches!(self, StepState::Complete | StepState::ResolvedManually)
    }
}

/// States as the items of a SQL list, `'complete', 'error'`, for
/// `state [NOT] IN (...)` in SQL text (a literal list, not a parameter, so a
/// partial index with the same predicate can serve the query). State names are
/// plain snake_case words: nothing to escape.
pub fn sql_list<S: fmt::Display>(states: impl IntoIterator<Item = S>) -> String {
    states
        .into_iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses an illegal task transition.
pub fn check_task(from: TaskState, to: TaskState) -> Result<(), TransitionError> {
    if TaskState::LEGAL.contains(&(from, to)) {
        Ok(())
    } else {
        Err(TransitionError::Illegal {
            machine: "task",
            from: from.to_string(),
            to: to.to_string(),
        })
    }
}

/// Refuses an illegal step transition.
pub fn check_step(from: StepState, to: StepState) -> Result<(), TransitionError> {
    if StepState::LEGAL.contains(&(from, to)) {
        Ok(())
    } else {
        Err(TransitionError::Illegal {
            machine: "step",
            from: from.to_string(),
            to: to.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>(), Ok(*s));
        }
        for s in StepState::ALL {
            assert_eq!(s.as_str().parse::<StepState>(), Ok(*s));
        }
        assert!(matches!(
            "bogus".parse::<StepState>(),
            Err(TransitionError::UnknownState { .. })
        ));
    }

    #[test]
    fn every_pair_is_legal_or_refused_as_the_table_says() {
        let mut legal = 0;
        for &from in TaskState::ALL {
            for &to in TaskState::ALL {
                let ok = check_task(from, to).is_ok();
                assert_eq!(ok, TaskState::LEGAL.contains(&(from, to)));
                legal += ok as usize;
            }
        }
        assert_eq!(legal, TaskState::LEGAL.len());
        for &from in StepState::ALL {
            for &to in StepState::ALL {
                assert_eq!(
                    check_step(from, to).is_ok(),
                    StepState::LEGAL.contains(&(from, to))
                );
            }
        }
    }

    /// The hot-path SQL (the claim and report in `store::step`, the results
    /// take in `migrations/functions/take_step_results.sql`) writes these transitions without looking them up
    /// in `tasker.legal_step_transitions`: they must stay legal here.
    #[test]
    fn the_transitions_the_hot_path_writes_directly_are_legal() {
        use StepState::*;
        for (from, to) in [
            (Enqueued, InProgress),
            (InProgress, InProgress),
            (InProgress, EnqueuedForOrchestration),
            (EnqueuedForOrchestration, Complete),
            (Pending, Enqueued),
            (InProgress, Enqueued),
            (Enqueued, EnqueuedForOrchestration),
            (Pending, Waiting),
            (Error, Waiting),
            (Waiting, EnqueuedForOrchestration),
            (WaitingForRetry, Pending),
            (Error, Pending),
        ] {
            assert!(check_step(from, to).is_ok(), "{from} -> {to}");
        }
    }

    #[test]
    fn terminal_sql_lists() {
        let sql = "'complete', 'error', 'cancelled', 'resolved_manually'";
        assert_eq!(TaskState::terminal_sql_list(), sql);
        assert_eq!(StepState::terminal_sql_list(), sql);
        assert_eq!(sql_list([TaskState::Pending]), "'pending'");
    }

    #[test]
    fn terminal_states_only_leave_by_operator_resolution() {
        for &(from, to) in TaskState::LEGAL {
            if from.is_terminal() {
                assert_eq!((from, to), (TaskState::Error, TaskState::ResolvedManually));
            }
        }
        let err = check_task(TaskState::Complete, TaskState::Pending).unwrap_err();
        assert_eq!(
            err.to_string(),
            "illegal task transition complete -> pending"
        );
    }
}
