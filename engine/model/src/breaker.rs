//! Circuit breakers (`[circuit_breakers]`): one per dependency a process
//! calls — the database, and each handler backend (WASM host, C, Python,
//! Ruby, Rust) — so that a dependency that keeps failing is left alone for a
//! while instead of being hammered, and a worker stops claiming steps it
//! could not run (claims that would only expire).
//!
//! A breaker is **closed** (calls go through) until `failure_threshold`
//! consecutive failures open it; **open** refuses calls for
//! `reset_timeout_ms`; then **half-open** lets one trial call through: its
//! success closes the breaker, its failure opens it again. Every breaker of
//! the process is listed by [`snapshot`] (metrics, `/health/ready`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// When breakers open and for how long (`[circuit_breakers]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// `false`: every call goes through and nothing is counted.
    pub enabled: bool,
    /// Consecutive failures that open a breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls.
    pub reset_timeout: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            enabled: true,
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    /// A half-open breaker's trial call is out.
    trial_out: bool,
    opened_total: u64,
}

/// One dependency's breaker. Cheap to share (`Arc`), safe from any thread.
#[derive(Debug)]
pub struct Breaker {
    name: String,
    policy: BreakerPolicy,
    inner: Mutex<Inner>,
}

/// A breaker's state for metrics and health checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BreakerReport {
    pub state: BreakerState,
    /// Consecutive failures so far.
    pub failures: u32,
    /// How many times it opened since the process started.
    pub opened_total: u64,
}

impl Breaker {
    /// A closed breaker named `name` (not listed by [`snapshot`]; see [`breaker`]).
    pub fn new(name: impl Into<String>, policy: BreakerPolicy) -> Breaker {
        Breaker {
            name: name.into(),
            policy,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                opened_at: None,
                trial_out: false,
                opened_total: 0,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state now (an open breaker whose time is up reads half-open).
    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.advance(&mut inner);
        inner.state
    }

    fn advance(&self, inner: &mut Inner) {
        if inner.state == BreakerState::Open
            && inner
                .opened_at
                .is_some_and(|at| at.elapsed() >= self.policy.reset_timeout)
        {
            inner.state = BreakerState::HalfOpen;
            inner.trial_out = false;
        }
    }

    /// Whether a call may go now: always when closed; when half-open, the
    /// one trial call (the caller must then [`record`](Breaker::record) it);
    /// never when open.
    pub fn allow(&self) -> bool {
        if !self.policy.enabled {
            return true;
        }
        let mut inner = self.lock();
        self.advance(&mut inner);
        match inner.state {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if inner.trial_out => false,
            BreakerState::HalfOpen => {
                inner.trial_out = true;
                true
            }
        }
    }

    /// Hands back a half-open breaker's trial that was not used (the call it
    /// was taken for did not happen), so the next caller may try.
    pub fn release_trial(&self) {
        let mut inner = self.lock();
        if inner.state == BreakerState::HalfOpen {
            inner.trial_out = false;
        }
    }

    /// How long until an open breaker lets a trial through (zero unless open).
    pub fn retry_in(&self) -> Duration {
        let inner = self.lock();
        match (inner.state, inner.opened_at) {
            (BreakerState::Open, Some(at)) => {
                self.policy.reset_timeout.saturating_sub(at.elapsed())
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a call's outcome.
    pub fn record(&self, success: bool) {
        if !self.policy.enabled {
            return;
        }
        let mut inner = self.lock();
        self.advance(&mut inner);
        if success {
            if inner.state != BreakerState::Closed {
                tracing::info!(breaker = %self.name, "circuit breaker closed");
            }
            inner.state = BreakerState::Closed;
            inner.failures = 0;
            inner.trial_out = false;
            return;
        }
        inner.failures = inner.failures.saturating_add(1);
        let trip = match inner.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => inner.failures >= self.policy.failure_threshold.max(1),
            BreakerState::Open => false,
        };
        if trip {
            inner.state = BreakerState::Open;
            inner.opened_at = Some(Instant::now());
            inner.trial_out = false;
            inner.opened_total += 1;
            tracing::warn!(
                breaker = %self.name,
                failures = inner.failures,
                reset_in_ms = self.policy.reset_timeout.as_millis() as u64,
                "circuit breaker opened"
            );
        }
    }

    /// What [`snapshot`] reports for it.
    pub fn report(&self) -> BreakerReport {
        let mut inner = self.lock();
        self.advance(&mut inner);
        BreakerReport {
            state: inner.state,
            failures: inner.failures,
            opened_total: inner.opened_total,
        }
    }
}

fn registry() -> &'static Mutex<Vec<Weak<Breaker>>> {
    static R: OnceLock<Mutex<Vec<Weak<Breaker>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// A new breaker named `name` (`database`, `handlers.wasm`, ...), listed by
/// [`snapshot`] while it lives. Each user (a worker) has its own: two
/// workers in one process do not open each other's breakers.
pub fn breaker(name: &str, policy: BreakerPolicy) -> Arc<Breaker> {
    let b = Arc::new(Breaker::new(name, policy));
    let mut r = registry().lock().unwrap_or_else(|p| p.into_inner());
    r.retain(|w| w.strong_count() > 0);
    r.push(Arc::downgrade(&b));
    b
}

/// The process's breakers, by name; breakers sharing a name are reported as
/// the worst of them (open, then half-open, then closed), their openings
/// added up.
pub fn snapshot() -> BTreeMap<String, BreakerReport> {
    let live: Vec<Arc<Breaker>> = {
        let r = registry().lock().unwrap_or_else(|p| p.into_inner());
        r.iter().filter_map(Weak::upgrade).collect()
    };
    let rank = |s: BreakerState| match s {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    };
    let mut out: BTreeMap<String, BreakerReport> = BTreeMap::new();
    for b in live {
        let report = b.report();
        match out.get_mut(b.name()) {
            None => {
                out.insert(b.name().to_string(), report);
            }
            Some(seen) => {
                seen.opened_total += report.opened_total;
                if rank(report.state) > rank(seen.state) {
                    seen.state = report.state;
                }
                seen.failures = seen.failures.max(report.failures);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(threshold: u32, reset_ms: u64) -> BreakerPolicy {
        BreakerPolicy {
            enabled: true,
            failure_threshold: threshold,
            reset_timeout: Duration::from_millis(reset_ms),
        }
    }

    #[test]
    fn opens_after_the_threshold_then_lets_one_trial_through() {
        let b = Breaker::new("t", policy(3, 50));
        for _ in 0..2 {
            assert!(b.allow());
            b.record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.record(false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        assert!(b.retry_in() > Duration::ZERO);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allow(), "one trial");
        assert!(!b.allow(), "only one");
        b.record(false);
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "a failed trial opens it again"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow());
        b.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow() && b.allow());
        assert_eq!(b.report().opened_total, 2);
    }

    #[test]
    fn a_success_resets_the_count_and_disabled_breakers_never_open() {
        let b = Breaker::new("t", policy(2, 1000));
        b.record(false);
        b.record(true);
        b.record(false);
        assert_eq!(b.state(), BreakerState::Closed);
        let off = Breaker::new(
            "off",
            BreakerPolicy {
                enabled: false,
                ..policy(1, 1000)
            },
        );
        for _ in 0..10 {
            off.record(false);
        }
        assert!(off.allow());
        assert_eq!(off.state(), BreakerState::Closed);
    }

    #[test]
    fn the_snapshot_reports_the_worst_of_a_name_while_it_lives() {
        let a = breaker("registry-test", policy(1, 1000));
        let b = breaker("registry-test", policy(9, 9));
        assert!(!Arc::ptr_eq(&a, &b), "each user has its own");
        assert_eq!(snapshot()["registry-test"].state, BreakerState::Closed);
        a.record(false);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(snapshot()["registry-test"].state, BreakerState::Open);
        drop((a, b));
        assert!(!snapshot().contains_key("registry-test"));
    }
}
