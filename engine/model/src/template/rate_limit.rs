//! Rate limits: a step may name a limit (`rate_limit: { name: payments, key:
//! input.customer_id }`) defined with `tasker limit set payments --rate 100/s`.
//! Workers start the steps of one limit and key no faster than its rate,
//! across processes (the claim, `claim_steps.sql`); a step over the limit
//! waits, it never fails. This module holds the template side (the step's
//! reference, checked when the template is read) and the rules of a limit's
//! definition shared by the API and the CLI ([`parse_rate`], [`check_limit`]).

use serde::{Deserialize, Serialize};

use super::{validate_identifier, IdentKind, TemplateError};

/// The slowest rate a limit may have: one step an hour.
pub const MIN_PER_SECOND: f64 = 1.0 / 3600.0;
/// The fastest rate a limit may have: a million steps a second.
pub const MAX_PER_SECOND: f64 = 1_000_000.0;
/// The largest burst a limit may have.
pub const MAX_BURST: u32 = 1_000_000;
/// The longest `key` of a step's `rate_limit`, in characters.
pub const MAX_KEY_LEN: usize = 200;
/// The most segments a `key` may have after `input`.
pub const MAX_KEY_SEGMENTS: usize = 16;

/// A step's reference to a named rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRef {
    /// The limit's name (`tasker limit set <name>`): `^[a-z][a-z0-9_]*$`,
    /// 1..=63 characters. A name with no limit defined runs unlimited.
    pub name: String,
    /// Where in the task's input the key is: `input.customer_id`,
    /// `input.order.region`. Each distinct value gets its own rate; a task
    /// whose input lacks it shares the bucket of the empty key. None: one
    /// rate for every step of the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl RateLimitRef {
    /// The key's path into the task's input, without the leading `input`
    /// (`input.order.region` → `["order", "region"]`); `None` without a key.
    /// Call on a checked reference: an invalid key yields its segments as written.
    pub fn key_path(&self) -> Option<Vec<String>> {
        self.key
            .as_ref()
            .map(|k| k.split('.').skip(1).map(str::to_string).collect::<Vec<_>>())
    }

    /// Checks the name and the key's syntax; the error names `step`.
    pub(crate) fn check(&self, step: &str) -> Result<(), TemplateError> {
        let bad = |reason: String| TemplateError::BadRateLimit {
            step: step.to_string(),
            reason,
        };
        validate_limit_name(&self.name).map_err(bad)?;
        if let Some(key) = &self.key {
            check_key(key).map_err(bad)?;
        }
        Ok(())
    }
}

/// Checks a limit's name: `^[a-z][a-z0-9_]*$`, 1..=63 characters (the rule
/// of step names); the error says which rule failed.
pub fn validate_limit_name(name: &str) -> Result<(), String> {
    match validate_identifier(IdentKind::StepName, name) {
        Ok(()) => Ok(()),
        Err(TemplateError::BadIdentifier { reason, .. }) => {
            Err(format!("bad rate limit name `{name}`: {reason}"))
        }
        Err(other) => Err(other.to_string()),
    }
}

/// Checks a key expression: `input` then 1..=16 `.segment`s of
/// `[A-Za-z0-9_-]`, at most 200 characters.
fn check_key(key: &str) -> Result<(), String> {
    let expected = "expected `input.<field>` such as `input.customer_id` or `input.order.region` \
                    (fields of A-Z, a-z, 0-9, `_`, `-`)";
    if key.chars().count() > MAX_KEY_LEN {
        return Err(format!(
            "key is {} characters long, the maximum is {MAX_KEY_LEN}",
            key.chars().count()
        ));
    }
    let mut parts = key.split('.');
    if parts.next() != Some("input") {
        return Err(format!("bad key `{key}`: {expected}"));
    }
    let segments: Vec<&str> = parts.collect();
    if segments.is_empty() {
        return Err(format!("bad key `{key}`: {expected}"));
    }
    if segments.len() > MAX_KEY_SEGMENTS {
        return Err(format!(
            "bad key `{key}`: {} fields deep, the maximum is {MAX_KEY_SEGMENTS}",
            segments.len()
        ));
    }
    let good = |s: &&str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if let Some(s) = segments.iter().find(|s| !good(s)) {
        return Err(format!("bad key `{key}`: bad field `{s}`; {expected}"));
    }
    Ok(())
}

/// Reads a rate: a positive number of steps per second, minute or hour —
/// `100/s`, `6000/m`, `10/h`, `0.5/s` — and returns steps per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let bad = || {
        format!("bad rate `{text}`: expected a number of steps per s, m or h, such as 100/s, 6000/m, 10/h")
    };
    let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: f64 = count.trim().parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return Err(bad()),
    };
    let per_second = count / seconds;
    check_rate(per_second).map_err(|e| format!("bad rate `{text}`: {e}"))?;
    Ok(per_second)
}

/// Writes a rate in the largest unit that keeps it whole: `100/s`, `30/m`,
/// `10/h`; else steps per second with up to 6 decimals.
pub fn format_rate(per_second: f64) -> String {
    for (unit, seconds) in [("s", 1.0), ("m", 60.0), ("h", 3600.0)] {
        let n = per_second * seconds;
        if n >= 1.0 && (n - n.round()).abs() < 1e-6 * n.max(1.0) {
            return format!("{}/{unit}", n.round());
        }
    }
    let text = format!("{per_second:.6}");
    format!("{}/s", text.trim_end_matches('0').trim_end_matches('.'))
}

/// Checks a rate in steps per second: finite, from one an hour to a million
/// a second.
fn check_rate(per_second: f64) -> Result<(), String> {
    // A small tolerance: `1/h` is exactly the minimum.
    if !per_second.is_finite() || per_second < MIN_PER_SECOND * (1.0 - 1e-9) {
        return Err("a rate must be at least 1/h (and a finite, positive number)".into());
    }
    if per_second > MAX_PER_SECOND {
        return Err(format!(
            "a rate must be at most {MAX_PER_SECOND}/s, not {per_second}/s"
        ));
    }
    Ok(())
}

/// Checks a limit's definition: the rate (steps per second, 1/h to
/// 1,000,000/s) and the burst (1..=1,000,000 steps at once).
pub fn check_limit(per_second: f64, burst: u32) -> Result<(), String> {
    check_rate(per_second)?;
    if burst == 0 || burst > MAX_BURST {
        return Err(format!(
            "burst must be between 1 and {MAX_BURST}, not {burst}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Template;

    fn parse(step: &str) -> Result<Template, TemplateError> {
        Template::from_yaml_str(
            &format!("namespace: demo\nname: t\nversion: 1.0.0\nsteps:\n  - {step}\n"),
            "t.yaml",
        )
    }

    #[test]
    fn a_step_references_a_limit_with_an_optional_key() {
        let t = parse(
            "{ name: a, handler: { name: h }, rate_limit: { name: payments, key: input.customer-id } }",
        )
        .expect("valid");
        let r = t.steps[0].rate_limit.clone().expect("rate_limit");
        assert_eq!(r.name, "payments");
        assert_eq!(r.key_path(), Some(vec!["customer-id".to_string()]));
        let json = serde_json::to_value(&t).expect("serialize");
        assert_eq!(
            json["steps"][0]["rate_limit"],
            serde_json::json!({"name": "payments", "key": "input.customer-id"})
        );
        assert_eq!(Template::from_json_value(json).expect("round trip"), t);

        let plain =
            parse("{ name: a, handler: { name: h }, rate_limit: { name: api } }").expect("no key");
        assert_eq!(
            plain.steps[0]
                .rate_limit
                .as_ref()
                .and_then(|r| r.key_path()),
            None
        );
        // A step without one serializes as before.
        let none = parse("{ name: a, handler: { name: h } }").expect("none");
        let json = serde_json::to_value(&none).expect("serialize");
        assert!(json["steps"][0].get("rate_limit").is_none(), "{json}");
    }

    #[test]
    fn bad_references_say_why() {
        for (limit, expect) in [
            ("{ name: Payments }", "bad rate limit name `Payments`"),
            ("{ name: '' }", "must not be empty"),
            ("{ name: p, key: customer_id }", "expected `input.<field>`"),
            ("{ name: p, key: input }", "expected `input.<field>`"),
            ("{ name: p, key: input. }", "bad field ``"),
            ("{ name: p, key: 'input.a b' }", "bad field `a b`"),
            ("{ name: p, key: input.a..b }", "bad field ``"),
            ("{ name: p, other: 1 }", "unknown field `other`"),
        ] {
            let e = parse(&format!(
                "{{ name: a, handler: {{ name: h }}, rate_limit: {limit} }}"
            ))
            .expect_err(limit)
            .to_string();
            assert!(e.contains(expect), "{limit}: {e}");
        }
        let deep = format!("input{}", ".a".repeat(17));
        let e = parse(&format!(
            "{{ name: a, handler: {{ name: h }}, rate_limit: {{ name: p, key: {deep} }} }}"
        ))
        .expect_err("deep")
        .to_string();
        assert!(
            e.contains("step `a` has a bad rate_limit") && e.contains("maximum is 16"),
            "{e}"
        );
    }

    #[test]
    fn rates_parse_and_print() {
        for (text, per_second) in [
            ("100/s", 100.0),
            ("6000/m", 100.0),
            ("10/h", 10.0 / 3600.0),
            ("0.5/s", 0.5),
            (" 1/h ", 1.0 / 3600.0),
            ("1000000/s", 1_000_000.0),
        ] {
            let got = parse_rate(text).expect(text);
            assert!((got - per_second).abs() < 1e-12, "{text}: {got}");
        }
        for text in [
            "", "100", "100/d", "x/s", "-1/s", "0/s", "1/2h", "nan/s", "inf/s",
        ] {
            assert!(
                parse_rate(text).expect_err(text).contains("bad rate"),
                "{text}"
            );
        }
        assert!(parse_rate("0.5/h")
            .expect_err("slow")
            .contains("at least 1/h"));
        assert!(parse_rate("2000000/s")
            .expect_err("fast")
            .contains("at most"));
        for (per_second, text) in [
            (100.0, "100/s"),
            (0.5, "30/m"),
            (10.0 / 3600.0, "10/h"),
            (1.5, "90/m"),
            (3.0 / 7200.0, "0.000417/s"),
        ] {
            assert_eq!(format_rate(per_second), text);
        }
    }

    #[test]
    fn limits_are_bounded() {
        check_limit(10.0, 1).expect("ok");
        assert!(check_limit(10.0, 0).unwrap_err().contains("burst"));
        assert!(check_limit(10.0, MAX_BURST + 1)
            .unwrap_err()
            .contains("burst"));
        assert!(check_limit(0.0, 1).unwrap_err().contains("at least 1/h"));
        assert!(check_limit(f64::NAN, 1)
            .unwrap_err()
            .contains("at least 1/h"));
        assert!(validate_limit_name("payments_v2").is_ok());
        assert!(validate_limit_name("a-b")
            .unwrap_err()
            .contains("bad character"));
    }
}
