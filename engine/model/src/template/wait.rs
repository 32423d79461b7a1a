//! Durable waits: steps that run no handler but wait for a named signal
//! (`wait_for: { signal: approved, timeout: 1h }`) or for a length of time
//! (`sleep: 10m`). While they wait they hold no worker slot and no
//! connection: the wait is a row (`tasker.steps.wake_at`), woken by the
//! orchestrator's sweep or by the signal (`POST /v1/tasks/{id}/signals/{name}`).
//!
//! A step declares exactly one of `handler`, `wait_for`, `sleep`: a step is
//! read as the [`RawStep`] written in YAML or JSON and converted into a
//! [`StepTemplate`], whose `handler` for a wait step is a placeholder naming
//! the kind ([`Wait::handler_name`]), so everything that lists handlers
//! (`tasker task show`, the dead-letter queue) says what the step is.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::{HandlerRef, RetryPolicy, StepTemplate, TemplateError};

/// The longest wait a step may declare (a `sleep` or a signal's `timeout`):
/// 365 days, in seconds.
pub const MAX_WAIT_SECONDS: u32 = 365 * 86_400;

/// The `handler.name` shown for a step that waits for a signal.
pub const SIGNAL_HANDLER: &str = "tasker.signal";
/// The `handler.name` shown for a step that sleeps.
pub const SLEEP_HANDLER: &str = "tasker.sleep";

/// What a wait step waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The signal `name` sent to the step's task, at most `timeout_seconds`
    /// after the step became ready; then it fails (not retried).
    Signal {
        /// The signal's name: `^[a-z][a-z0-9_]*$`, 1..=63 characters, unique
        /// among the template's signal steps.
        name: String,
        /// How long to wait for it, `1..=MAX_WAIT_SECONDS`.
        timeout_seconds: u32,
    },
    /// `seconds` after the step became ready, it completes.
    Sleep {
        /// The length of the sleep, `1..=MAX_WAIT_SECONDS`.
        seconds: u32,
    },
}

impl Wait {
    /// The signal's name, for a signal wait.
    pub fn signal(&self) -> Option<&str> {
        match self {
            Wait::Signal { name, .. } => Some(name),
            Wait::Sleep { .. } => None,
        }
    }

    /// The sleep's length, or the signal's time-out, in seconds.
    pub fn seconds(&self) -> u32 {
        match self {
            Wait::Signal {
                timeout_seconds, ..
            } => *timeout_seconds,
            Wait::Sleep { seconds } => *seconds,
        }
    }

    /// The placeholder `handler.name` of a step of this kind.
    pub fn handler_name(&self) -> &'static str {
        match self {
            Wait::Signal { .. } => SIGNAL_HANDLER,
            Wait::Sleep { .. } => SLEEP_HANDLER,
        }
    }

    /// The placeholder handler of a step of this kind (no version, config `{}`).
    pub fn handler(&self) -> HandlerRef {
        HandlerRef {
            name: self.handler_name().to_string(),
            version: None,
            config: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Checks the length is within `1..=MAX_WAIT_SECONDS`; the error says why.
    pub(crate) fn check(&self) -> Result<(), String> {
        let (what, secs) = match self {
            Wait::Signal {
                timeout_seconds, ..
            } => ("wait_for.timeout", *timeout_seconds),
            Wait::Sleep { seconds } => ("sleep", *seconds),
        };
        if secs == 0 || secs > MAX_WAIT_SECONDS {
            return Err(format!(
                "{what} is {}, must be between 1s and {}",
                format_duration(secs),
                format_duration(MAX_WAIT_SECONDS)
            ));
        }
        Ok(())
    }
}

/// Reads a duration: a whole number followed by `s`, `m`, `h` or `d` (`30s`,
/// `10m`, `2h`, `1d`), or a bare number of seconds. Returns seconds.
pub fn parse_duration(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let bad = || {
        format!("bad duration `{text}`: expected a whole number and a unit s, m, h or d, such as 30s, 10m, 2h, 1d")
    };
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let scale: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(scale)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| {
            format!(
                "duration `{text}` is too long: the maximum is {}",
                format_duration(MAX_WAIT_SECONDS)
            )
        })
}

/// Writes seconds in the largest unit that divides them: `90s`, `10m`, `2h`, `1d`.
pub fn format_duration(seconds: u32) -> String {
    match seconds {
        0 => "0s".to_string(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A duration as written: `10m`, or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Duration(u32);

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 30s, 10m, 2h, 1d, or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map(Duration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                u32::try_from(v)
                    .map(Duration)
                    .map_err(|_| E::custom(format!("duration {v}s is too long")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("duration {v} is negative")))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `wait_for` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaitFor {
    signal: String,
    timeout: Duration,
}

/// A step as written in YAML or JSON: one of `handler`, `wait_for`, `sleep`.
/// Serializing a [`StepTemplate`] writes this form, so that a handler step
/// reads exactly as it did before wait steps existed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handler: Option<HandlerRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wait_for: Option<RawWaitFor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sleep: Option<Duration>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate_limit: Option<super::RateLimitRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    concurrency: Option<super::Concurrency>,
}

/// Attempts of a wait step: one (a wait is not retried; an operator's
/// `tasker step retry` starts it again).
fn wait_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

impl TryFrom<RawStep> for StepTemplate {
    type Error = TemplateError;

    fn try_from(raw: RawStep) -> Result<StepTemplate, TemplateError> {
        let RawStep {
            name,
            handler,
            wait_for,
            sleep,
            depends_on,
            retry,
            timeout_seconds,
            pool,
            rate_limit,
            concurrency,
        } = raw;
        let wait = match (handler, wait_for, sleep) {
            (Some(handler), None, None) => {
                return Ok(StepTemplate {
                    name,
                    handler,
                    depends_on,
                    retry: retry.unwrap_or_default(),
                    timeout_seconds: timeout_seconds.unwrap_or(super::DEFAULT_TIMEOUT_SECONDS),
                    pool,
                    wait: None,
                    rate_limit,
                    concurrency,
                })
            }
            (None, Some(w), None) => Wait::Signal {
                name: w.signal,
                timeout_seconds: w.timeout.0,
            },
            (None, None, Some(d)) => Wait::Sleep { seconds: d.0 },
            (None, None, None) => {
                return Err(TemplateError::StepKind {
                    step: name,
                    found: "none of them".into(),
                })
            }
            _ => {
                return Err(TemplateError::StepKind {
                    step: name,
                    found: "more than one of them".into(),
                })
            }
        };
        for (key, given) in [
            ("retry", retry.is_some()),
            ("timeout_seconds", timeout_seconds.is_some()),
            ("pool", pool.is_some()),
            ("rate_limit", rate_limit.is_some()),
            ("concurrency", concurrency.is_some()),
        ] {
            if given {
                return Err(bad_wait(
                    name,
                    &format!(
                        "a `wait_for` or `sleep` step takes no `{key}`: it runs no handler \
                         (a signal's time-out is `wait_for.timeout`)"
                    ),
                ));
            }
        }
        Ok(StepTemplate {
            handler: wait.handler(),
            name,
            depends_on,
            retry: wait_retry(),
            timeout_seconds: super::DEFAULT_TIMEOUT_SECONDS,
            pool: None,
            wait: Some(wait),
            rate_limit: None,
            concurrency: None,
        })
    }
}

fn bad_wait(step: String, reason: &str) -> TemplateError {
    TemplateError::BadWait {
        step,
        reason: reason.to_string(),
    }
}

impl From<StepTemplate> for RawStep {
    fn from(s: StepTemplate) -> RawStep {
        match s.wait {
            None => RawStep {
                name: s.name,
                handler: Some(s.handler),
                wait_for: None,
                sleep: None,
                depends_on: s.depends_on,
                retry: Some(s.retry),
                timeout_seconds: Some(s.timeout_seconds),
                pool: s.pool,
                rate_limit: s.rate_limit,
                concurrency: s.concurrency,
            },
            Some(wait) => {
                let (wait_for, sleep) = match wait {
                    Wait::Signal {
                        name,
                        timeout_seconds,
                    } => (
                        Some(RawWaitFor {
                            signal: name,
                            timeout: Duration(timeout_seconds),
                        }),
                        None,
                    ),
                    Wait::Sleep { seconds } => (None, Some(Duration(seconds))),
                };
                RawStep {
                    name: s.name,
                    handler: None,
                    wait_for,
                    sleep,
                    depends_on: s.depends_on,
                    retry: None,
                    timeout_seconds: None,
                    pool: None,
                    rate_limit: None,
                    concurrency: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::template::Template;

    const HEADER: &str = "namespace: demo\nname: t\nversion: 1.0.0\nsteps:\n";

    fn parse(steps: &str) -> Result<Template, TemplateError> {
        Template::from_yaml_str(&format!("{HEADER}{steps}"), "t.yaml")
    }

    fn rejected(steps: &str) -> String {
        parse(steps).expect_err(steps).to_string()
    }

    #[test]
    fn durations() {
        for (text, secs) in [
            ("30s", 30),
            ("10m", 600),
            ("2h", 7_200),
            ("1d", 86_400),
            ("45", 45),
        ] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
        }
        for text in ["", "m", "10x", "1.5h", "-3s", "10 m", "1h30m"] {
            let e = parse_duration(text).expect_err(text);
            assert!(e.contains("expected a whole number"), "{text}: {e}");
        }
        assert!(parse_duration("99999999d")
            .unwrap_err()
            .contains("too long"));
        for (secs, text) in [(90, "90s"), (600, "10m"), (7_200, "2h"), (172_800, "2d")] {
            assert_eq!(format_duration(secs), text);
        }
    }

    #[test]
    fn wait_steps_parse_and_round_trip() {
        let t = parse(
            "  - { name: a, handler: { name: h } }\n\
             \x20 - { name: approval, wait_for: { signal: approved, timeout: 1h }, depends_on: [a] }\n\
             \x20 - { name: nap, sleep: 10m, depends_on: [approval] }\n\
             \x20 - { name: quick, sleep: 5 }\n",
        )
        .expect("valid");
        assert_eq!(t.steps[0].wait, None);
        let approval = &t.steps[1];
        assert_eq!(
            approval.wait,
            Some(Wait::Signal {
                name: "approved".into(),
                timeout_seconds: 3_600
            })
        );
        assert_eq!(approval.handler.name, SIGNAL_HANDLER);
        assert_eq!(approval.retry.max_attempts, 1);
        assert_eq!(t.steps[2].wait, Some(Wait::Sleep { seconds: 600 }));
        assert_eq!(t.steps[2].handler.name, SLEEP_HANDLER);
        assert_eq!(t.steps[3].wait.as_ref().map(Wait::seconds), Some(5));

        let value = serde_json::to_value(&t).expect("serialize");
        assert_eq!(
            value["steps"][1],
            json!({"name": "approval", "wait_for": {"signal": "approved", "timeout": "1h"},
                   "depends_on": ["a"]})
        );
        assert_eq!(
            value["steps"][2],
            json!({"name": "nap", "sleep": "10m", "depends_on": ["approval"]})
        );
        // A handler step serializes as it always did.
        assert_eq!(
            value["steps"][0],
            json!({"name": "a", "handler": {"name": "h", "config": {}}, "depends_on": [],
                   "retry": {"max_attempts": 3, "backoff": "exponential", "base_ms": 100,
                             "max_ms": 30000, "jitter": false},
                   "timeout_seconds": 30})
        );
        assert_eq!(Template::from_json_value(value).expect("round trip"), t);
    }

    #[test]
    fn exactly_one_kind() {
        let none = rejected("  - { name: a }\n");
        assert!(
            none.contains(
                "step `a` has none of them: a step has exactly one of `handler`, `wait_for`, `sleep`"
            ),
            "{none}"
        );
        let two = rejected("  - { name: a, handler: { name: h }, sleep: 10s }\n");
        assert!(two.contains("step `a` has more than one of them"), "{two}");
        let three = rejected("  - { name: a, sleep: 1s, wait_for: { signal: go, timeout: 1m } }\n");
        assert!(three.contains("more than one of them"), "{three}");
    }

    #[test]
    fn wait_steps_take_no_handler_settings() {
        for extra in [
            "retry: { max_attempts: 2 }",
            "timeout_seconds: 5",
            "pool: other",
        ] {
            let key = extra.split(':').next().unwrap_or_default();
            let msg = rejected(&format!("  - {{ name: a, sleep: 1m, {extra} }}\n"));
            assert!(msg.contains(&format!("takes no `{key}`")), "{msg}");
        }
    }

    #[test]
    fn bad_waits() {
        let zero = rejected("  - { name: a, sleep: 0s }\n");
        assert!(
            zero.contains("step `a` has a bad wait: sleep is 0s, must be between 1s and 365d"),
            "{zero}"
        );
        let long = rejected("  - { name: a, wait_for: { signal: go, timeout: 366d } }\n");
        assert!(long.contains("wait_for.timeout is 366d"), "{long}");
        let unit = rejected("  - { name: a, sleep: 10y }\n");
        assert!(unit.contains("bad duration `10y`"), "{unit}");
        let name = rejected("  - { name: a, wait_for: { signal: Go-Now, timeout: 1m } }\n");
        assert!(name.contains("bad signal name `Go-Now`"), "{name}");
        let missing = rejected("  - { name: a, wait_for: { signal: go } }\n");
        assert!(missing.contains("missing field `timeout`"), "{missing}");
        let twice = rejected(
            "  - { name: a, wait_for: { signal: go, timeout: 1m } }\n\
             \x20 - { name: b, wait_for: { signal: go, timeout: 1m } }\n",
        );
        assert!(
            twice.contains("signal `go` is waited for by both `a` and `b`"),
            "{twice}"
        );
    }
}
