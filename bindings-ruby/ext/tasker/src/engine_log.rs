//! The engine's log lines for Ruby: libtasker queues them
//! (`tasker::log_queue`: bounded, an engine thread never waits, lines beyond
//! the bound are dropped and counted) and a Ruby thread
//! (`lib/tasker/engine_log.rb`) drains them into `Tasker.logger`. Ruby is
//! never called from an engine thread.

use std::sync::atomic::Ordering;
use std::time::Instant;

use magnus::{function, Error, RArray, RModule, Ruby};

use crate::nogvl::{self, POLL};
use crate::worker::seconds;

/// `Tasker::Native.engine_log_install(max_level)`: queue the engine's lines up
/// to `max_level` (1 error .. 5 trace); called again, changes the level.
fn install(max_level: i32) {
    tasker::log_queue::install(max_level);
}

/// `Tasker::Native.engine_log_uninstall`: the engine's lines go back to stderr.
fn uninstall(ruby: &Ruby) -> Result<(), Error> {
    // Without the GVL: an engine thread may be handing over a line.
    nogvl::blocking(ruby, |_| tasker::log_queue::uninstall())
}

/// `Tasker::Native.engine_log_drain(timeout)`: the queued lines as
/// `[[level, target, message], ...]`, waiting up to `timeout` seconds for the
/// first without the GVL (an interrupt ends the wait early).
fn drain(ruby: &Ruby, timeout: f64) -> Result<RArray, Error> {
    let deadline = Instant::now() + seconds(ruby, timeout)?;
    let lines = nogvl::without_gvl(ruby, move |interrupted| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let lines = tasker::log_queue::drain(left.min(POLL), 1000);
        if !lines.is_empty() || left.is_zero() || interrupted.load(Ordering::SeqCst) {
            return lines;
        }
    })?
    .unwrap_or_default();
    let out = ruby.ary_new_capa(lines.len());
    for l in lines {
        out.push((l.level, l.target, l.message))?;
    }
    Ok(out)
}

/// `Tasker::Native.engine_log_dropped`: lines dropped (queue full) since the
/// last call.
fn dropped() -> u64 {
    tasker::log_queue::take_dropped()
}

pub fn define(native: RModule) -> Result<(), Error> {
    native.define_module_function("engine_log_install", function!(install, 1))?;
    native.define_module_function("engine_log_uninstall", function!(uninstall, 0))?;
    native.define_module_function("engine_log_drain", function!(drain, 1))?;
    native.define_module_function("engine_log_dropped", function!(dropped, 0))?;
    Ok(())
}
