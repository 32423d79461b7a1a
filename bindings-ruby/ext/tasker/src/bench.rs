//! `Tasker::Native::Bench`: the per-step dispatch overhead of pulled handlers,
//! in process and without a database. A Rust producer thread hands steps to
//! a `PullHandler` (exactly what the worker host does) and times each round
//! trip until the outcome comes back (`tasker::bench::pull_round_trips`); a
//! consumer takes them from the `PullQueue` (Ruby threads through
//! `Tasker::Worker`'s dispatch, or a Rust thread for the baseline) and
//! completes them.
//!
//! Built only with the `bench` feature (and tasker-abi's `bench` hooks):
//! `bench/dispatch.rb` builds the extension with it; the gem goes without.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Instant;

use magnus::prelude::*;
use magnus::{function, method, Error, RModule, Ruby};
use tasker::handler::PullQueue;

use crate::nogvl::{self, POLL};
use crate::worker::{seconds, RbStep};

/// The producer thread: round-trip times in nanoseconds, or what went wrong.
type Producer = JoinHandle<Result<Vec<u64>, String>>;

#[magnus::wrap(class = "Tasker::Native::Bench", free_immediately, size)]
pub struct Bench {
    queue: PullQueue,
    producer: Mutex<Option<Producer>>,
}

impl Bench {
    fn new() -> Self {
        Bench {
            queue: PullQueue::new(4),
            producer: Mutex::new(None),
        }
    }

    /// Starts handing out `n` steps (from a Rust thread).
    fn start(ruby: &Ruby, rb_self: &Self, n: usize) -> Result<(), Error> {
        let queue = rb_self.queue.clone();
        let handle = std::thread::Builder::new()
            .name("tasker-bench".into())
            .spawn(move || tasker::bench::pull_round_trips(&queue, n, "bench.noop"))
            .map_err(|e| Error::new(ruby.exception_runtime_error(), e.to_string()))?;
        *rb_self.producer.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(())
    }

    fn next_step(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<Option<RbStep>, Error> {
        let queue = rb_self.queue.clone();
        let deadline = Instant::now() + seconds(ruby, timeout)?;
        let got = nogvl::without_gvl(ruby, move |interrupted| loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match queue.next(left.min(POLL)) {
                None if !left.is_zero() && !interrupted.load(Ordering::SeqCst) => continue,
                other => return other,
            }
        })?;
        Ok(got.flatten().map(RbStep))
    }

    /// Waits for the producer; the round-trip times in nanoseconds.
    fn join(ruby: &Ruby, rb_self: &Self) -> Result<Vec<u64>, Error> {
        let handle = rb_self
            .producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                Error::new(ruby.exception_runtime_error(), "the bench was not started")
            })?;
        let result = nogvl::blocking(ruby, move |_| handle.join())?;
        match result {
            Ok(Ok(times)) => Ok(times),
            Ok(Err(e)) => Err(Error::new(ruby.exception_runtime_error(), e)),
            Err(_) => Err(Error::new(
                ruby.exception_runtime_error(),
                "the bench producer panicked",
            )),
        }
    }

    /// The baseline: the same round trips with a Rust consumer thread that
    /// completes each step with `null` at once.
    fn rust_baseline(ruby: &Ruby, n: usize) -> Result<Vec<u64>, Error> {
        let result = nogvl::blocking(ruby, move |_| tasker::bench::rust_pull_round_trips(n))?;
        result.map_err(|e| Error::new(ruby.exception_runtime_error(), e))
    }
}

pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Bench", ruby.class_object())?;
    class.define_singleton_method("new", function!(Bench::new, 0))?;
    class.define_singleton_method("rust_baseline", function!(Bench::rust_baseline, 1))?;
    class.define_method("start", method!(Bench::start, 1))?;
    class.define_method("next_step", method!(Bench::next_step, 1))?;
    class.define_method("join", method!(Bench::join, 0))?;
    Ok(())
}
