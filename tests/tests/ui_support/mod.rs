//! Support of the dashboard's browser test (`ui.rs`): the browser, the
//! `tasker` processes.

pub mod browser;
pub mod cluster;
