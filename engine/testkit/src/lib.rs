//! tasker-testkit: see the crate description.
