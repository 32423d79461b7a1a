//! The engine's log lines for Python `logging`: libtasker queues them
//! (`tasker::log_queue`, bounded, never waiting on an engine thread) and a
//! Python thread (`tasker/_engine_log.py`) drains them into
//! `logging.getLogger("tasker")`. Engine threads never take the GIL, so no
//! engine thread can wait on a Python thread, at run time or at exit.

use std::time::Duration;

use pyo3::prelude::*;

use crate::seconds;

/// Routes the engine's lines up to `max_level` (1 error .. 5 trace) to the
/// queue; called again, changes the level.
#[pyfunction]
pub fn engine_log_install(max_level: i32) {
    tasker::log_queue::install(max_level);
}

/// Gives the engine's log back to its default (warnings and errors on stderr).
/// Releases the GIL: an engine thread may be handing over a line.
#[pyfunction]
pub fn engine_log_uninstall(py: Python<'_>) {
    py.detach(tasker::log_queue::uninstall);
}

/// Queued lines as `(level, target, message)`, at most `max`: waits up to
/// `timeout` seconds for the first, without the GIL.
#[pyfunction]
#[pyo3(signature = (timeout, max=1000))]
pub fn engine_log_drain(
    py: Python<'_>,
    timeout: f64,
    max: usize,
) -> PyResult<Vec<(i32, String, String)>> {
    let timeout: Duration = seconds(timeout, "timeout")?;
    let lines = py.detach(move || tasker::log_queue::drain(timeout, max));
    Ok(lines
        .into_iter()
        .map(|l| (l.level, l.target, l.message))
        .collect())
}

/// Lines dropped because the queue was full, since the last call.
#[pyfunction]
pub fn engine_log_dropped() -> u64 {
    tasker::log_queue::take_dropped()
}

/// Adds the functions above to the module.
pub fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(engine_log_install, m)?)?;
    m.add_function(wrap_pyfunction!(engine_log_uninstall, m)?)?;
    m.add_function(wrap_pyfunction!(engine_log_drain, m)?)?;
    m.add_function(wrap_pyfunction!(engine_log_dropped, m)?)?;
    Ok(())
}
