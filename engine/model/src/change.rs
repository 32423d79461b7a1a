//! [`Changed`]: what a committed write changed that someone may wait for.
//!
//! The store returns one from every write that sends messages or moves a
//! task; it never wakes anyone itself. The caller passes it to
//! `tasker_notify::Wakeups::announce` after the commit.

use uuid::Uuid;

use crate::state::TaskState;

/// Queues that received messages and tasks whose state changed, in one
/// committed write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[must_use = "announce it (tasker_notify::Wakeups::announce), or readers wait for their next poll"]
pub struct Changed {
    /// Queues that received messages.
    pub queues: Vec<String>,
    /// Tasks whose state changed, with the new state.
    pub tasks: Vec<(Uuid, TaskState)>,
}

impl Changed {
    /// Nothing changed.
    pub fn none() -> Changed {
        Changed::default()
    }

    /// `queue` received messages.
    pub fn queue(queue: impl Into<String>) -> Changed {
        Changed {
            queues: vec![queue.into()],
            tasks: Vec::new(),
        }
    }

    /// Adds that `queue` received messages.
    pub fn with_queue(mut self, queue: impl Into<String>) -> Changed {
        let queue = queue.into();
        if !self.queues.contains(&queue) {
            self.queues.push(queue);
        }
        self
    }

    /// Adds that task `task_id` is now in `state`.
    pub fn with_task(mut self, task_id: Uuid, state: TaskState) -> Changed {
        self.tasks.push((task_id, state));
        self
    }

    /// Adds everything `other` changed.
    pub fn merge(&mut self, other: Changed) {
        for q in other.queues {
            if !self.queues.contains(&q) {
                self.queues.push(q);
            }
        }
        self.tasks.extend(other.tasks);
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty() && self.tasks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_named_once_tasks_in_order() {
        let a = Uuid::now_v7();
        let mut c = Changed::queue("steps_demo").with_task(a, TaskState::StepsInProcess);
        c.merge(Changed::queue("steps_demo").with_task(a, TaskState::Complete));
        assert_eq!(c.queues, vec!["steps_demo".to_string()]);
        assert_eq!(
            c.tasks,
            vec![(a, TaskState::StepsInProcess), (a, TaskState::Complete)]
        );
        assert!(!c.is_empty());
        assert!(Changed::none().is_empty());
    }
}
