//! Step retry policy: how many attempts a step gets and how long to wait between them.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The most attempts a step may be given.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// The longest delay a retry policy may ask for: 24 hours, in milliseconds.
pub const MAX_DELAY_MS_LIMIT: u64 = 24 * 60 * 60 * 1000;

/// How the delay between attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// Retry at once.
    None,
    /// `base_ms * attempt`.
    Linear,
    /// `base_ms * 2^(attempt - 1)`.
    Exponential,
}

/// A step's retry policy. Every field is optional in YAML; the defaults are
/// `max_attempts: 3, backoff: exponential, base_ms: 100, max_ms: 30000, jitter: false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts including the first one, `1..=100`.
    pub max_attempts: u32,
    /// How the delay grows.
    pub backoff: Backoff,
    /// Base delay in milliseconds, at most `max_ms`.
    pub base_ms: u64,
    /// Cap on any delay in milliseconds, at most 24 hours.
    pub max_ms: u64,
    /// Add a uniform random 0..=25% to each delay (still capped at `max_ms`).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Exponential,
            base_ms: 100,
            max_ms: 30_000,
            jitter: false,
        }
    }
}

impl RetryPolicy {
    /// Checks the ranges; the error is a sentence naming the broken rule.
    pub fn check(&self) -> Result<(), String> {
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return Err(format!(
                "max_attempts is {}, must be between 1 and {MAX_ATTEMPTS_LIMIT}",
                self.max_attempts
            ));
        }
        if self.max_ms > MAX_DELAY_MS_LIMIT {
            return Err(format!(
                "max_ms is {}, must be at most {MAX_DELAY_MS_LIMIT} (24 hours)",
                self.max_ms
            ));
        }
        if self.base_ms > self.max_ms {
            return Err(format!(
                "base_ms ({}) is greater than max_ms ({})",
                self.base_ms, self.max_ms
            ));
        }
        Ok(())
    }

    /// True when a step that has made `attempts_made` attempts may be tried again.
    pub fn has_attempts_left(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts
    }

    /// The delay before the retry that follows failed attempt `attempt` (1-based; 0 is
    /// treated as 1), using the thread-local random generator for jitter.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        self.delay_after_with_rng(attempt, &mut rand::rng())
    }

    /// [`RetryPolicy::delay_after`] with a caller-supplied random generator.
    pub fn delay_after_with_rng<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let base = self.base_delay_ms(attempt);
        let ms = if self.jitter && base > 0 {
            let extra = rng.random_range(0..=base / 4);
            base.saturating_add(extra).min(self.max_ms)
        } else {
            base
        };
        Duration::from_millis(ms)
    }

    /// The delay in milliseconds without jitter: the backoff formula capped at `max_ms`.
    pub fn base_delay_ms(&self, attempt: u32) -> u64 {
        let attempt = attempt.max(1);
        let raw = match self.backoff {
            Backoff::None => 0,
            Backoff::Linear => self.base_ms.saturating_mul(u64::from(attempt)),
            Backoff::Exponential => 2u64
                .checked_pow(attempt - 1)
                .map_or(u64::MAX, |factor| self.base_ms.saturating_mul(factor)),
        };
        raw.min(self.max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, base_ms: u64, max_ms: u64, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff,
            base_ms,
            max_ms,
            jitter,
        }
    }

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn none_is_always_zero() {
        let p = policy(Backoff::None, 100, 1000, true);
        for attempt in [0, 1, 2, 50, u32::MAX] {
            assert_eq!(ms(p.delay_after(attempt)), 0);
        }
    }

    #[test]
    fn linear_grows_by_base() {
        let p = policy(Backoff::Linear, 100, 1000, false);
        assert_eq!(ms(p.delay_after(1)), 100);
        assert_eq!(ms(p.delay_after(2)), 200);
        assert_eq!(ms(p.delay_after(3)), 300);
        assert_eq!(ms(p.delay_after(11)), 1000, "capped at max_ms");
    }

    #[test]
    fn exponential_doubles() {
        let p = policy(Backoff::Exponential, 100, 30_000, false);
        assert_eq!(ms(p.delay_after(1)), 100);
        assert_eq!(ms(p.delay_after(2)), 200);
        assert_eq!(ms(p.delay_after(3)), 400);
        assert_eq!(ms(p.delay_after(4)), 800);
        assert_eq!(ms(p.delay_after(9)), 25_600);
        assert_eq!(ms(p.delay_after(10)), 30_000, "capped at max_ms");
    }

    #[test]
    fn huge_attempts_do_not_overflow() {
        let p = policy(Backoff::Exponential, 100, 30_000, false);
        assert_eq!(ms(p.delay_after(200)), 30_000);
        assert_eq!(ms(p.delay_after(u32::MAX)), 30_000);
        let big = policy(Backoff::Linear, u64::MAX / 2, MAX_DELAY_MS_LIMIT, true);
        assert_eq!(
            ms(big.delay_after(u32::MAX)),
            u128::from(MAX_DELAY_MS_LIMIT)
        );
        let exp = policy(Backoff::Exponential, 1, MAX_DELAY_MS_LIMIT, true);
        assert_eq!(ms(exp.delay_after(64)), u128::from(MAX_DELAY_MS_LIMIT));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = policy(Backoff::Exponential, 100, 1000, true);
        for attempt in 1..=5u32 {
            let d = p.base_delay_ms(attempt);
            let upper = (d + d / 4).min(1000);
            let mut saw_above = false;
            for _ in 0..1000 {
                let got = p.delay_after(attempt).as_millis() as u64;
                assert!(
                    got >= d && got <= upper,
                    "attempt {attempt}: {got} not in [{d}, {upper}]"
                );
                saw_above |= got > d;
            }
            if upper > d {
                assert!(saw_above, "attempt {attempt}: jitter never added anything");
            }
        }
    }

    #[test]
    fn attempts_left() {
        let p = policy(Backoff::None, 0, 0, false);
        assert!(p.has_attempts_left(0));
        assert!(p.has_attempts_left(4));
        assert!(!p.has_attempts_left(5));
        assert!(!p.has_attempts_left(6));
    }

    #[test]
    fn check_rejects_out_of_range() {
        assert!(RetryPolicy::default().check().is_ok());
        let zero = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert!(zero.check().unwrap_err().contains("max_attempts is 0"));
        let many = RetryPolicy {
            max_attempts: 101,
            ..RetryPolicy::default()
        };
        assert!(many.check().unwrap_err().contains("max_attempts is 101"));
        let inverted = policy(Backoff::Linear, 500, 100, false);
        assert!(inverted
            .check()
            .unwrap_err()
            .contains("base_ms (500) is greater than max_ms (100)"));
        let long = policy(Backoff::Linear, 1, MAX_DELAY_MS_LIMIT + 1, false);
        assert!(long.check().unwrap_err().contains("24 hours"));
    }
}
