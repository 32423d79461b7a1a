//! Concurrency limits by key: a template or a step may declare
//! `concurrency: { key: input.customer_id, limit: 1, strategy: queue }`.
//! Never more than `limit` runs per key value are in flight, across every
//! process: the rest wait (held, no message, no attempt spent) until a slot
//! frees. This module holds the template side (the declaration, checked when
//! the template is read, and the key's value for a task input); the store
//! enforces it (`docs/flow-control.md`, "Concurrency limits").

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TemplateError;

/// The largest `limit` a concurrency declaration may have.
pub const MAX_CONCURRENCY: u32 = 10_000;
/// The longest `key` expression, in characters.
pub const MAX_CONCURRENCY_KEY_LEN: usize = 200;
/// The most fields a `key` may have after `input`.
pub const MAX_CONCURRENCY_KEY_SEGMENTS: usize = 16;

/// What happens to a new task whose template's concurrency group is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// It waits for a slot (its steps are held); the oldest waiting goes first.
    #[default]
    Queue,
    /// It is cancelled at once ("concurrency limit of <group> reached").
    CancelNewest,
    /// The oldest running task(s) of the group are cancelled to make room.
    CancelInProgress,
}

impl Strategy {
    /// The name as written in a template and stored on the task row.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Queue => "queue",
            Strategy::CancelNewest => "cancel_newest",
            Strategy::CancelInProgress => "cancel_in_progress",
        }
    }
}

/// A concurrency limit of a template (every task) or of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// Where in the task's input the key is: `input.customer_id`,
    /// `input.order.region`. Each distinct value has its own `limit`; a task
    /// whose input lacks it counts under the empty key. None: one group for
    /// the whole template (or step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How many may run at once per key, `1..=MAX_CONCURRENCY`.
    pub limit: u32,
    /// What to do with a new task when the group is full (template level
    /// only; a step's is always `queue`).
    #[serde(default)]
    pub strategy: Strategy,
}

impl Concurrency {
    /// Checks the key, the limit and (for a step, `step` given) that the
    /// strategy is `queue`; the error names where it is.
    pub(crate) fn check(&self, step: Option<&str>) -> Result<(), TemplateError> {
        let bad = |reason: String| TemplateError::BadConcurrency {
            place: match step {
                Some(s) => format!("step `{s}`"),
                None => "the template".to_string(),
            },
            reason,
        };
        if self.limit == 0 || self.limit > MAX_CONCURRENCY {
            return Err(bad(format!(
                "limit is {}, must be between 1 and {MAX_CONCURRENCY}",
                self.limit
            )));
        }
        if step.is_some() && self.strategy != Strategy::Queue {
            return Err(bad(format!(
                "strategy `{}` is for a template's concurrency only: a step's is `queue`",
                self.strategy.as_str()
            )));
        }
        if let Some(key) = &self.key {
            check_key(key).map_err(bad)?;
        }
        Ok(())
    }

    /// The key's value for a task's input: the text at the key's path (a
    /// string as it is, any other value as JSON text), or the empty key when
    /// the input lacks it, it is `null`, or there is no key.
    pub fn key_value(&self, input: &Value) -> String {
        let Some(key) = &self.key else {
            return String::new();
        };
        let mut at = input;
        for field in key.split('.').skip(1) {
            match at.get(field) {
                Some(v) => at = v,
                None => return String::new(),
            }
        }
        match at {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// Checks a key expression: `input` then 1..=16 `.field`s of `[A-Za-z0-9_-]`,
/// at most 200 characters.
fn check_key(key: &str) -> Result<(), String> {
    let expected = "expected `input.<field>` such as `input.customer_id` or `input.order.region` \
                    (fields of A-Z, a-z, 0-9, `_`, `-`)";
    if key.chars().count() > MAX_CONCURRENCY_KEY_LEN {
        return Err(format!(
            "key is {} characters long, the maximum is {MAX_CONCURRENCY_KEY_LEN}",
            key.chars().count()
        ));
    }
    let mut parts = key.split('.');
    if parts.next() != Some("input") {
        return Err(format!("bad key `{key}`: {expected}"));
    }
    let fields: Vec<&str> = parts.collect();
    if fields.is_empty() {
        return Err(format!("bad key `{key}`: {expected}"));
    }
    if fields.len() > MAX_CONCURRENCY_KEY_SEGMENTS {
        return Err(format!(
            "bad key `{key}`: {} fields deep, the maximum is {MAX_CONCURRENCY_KEY_SEGMENTS}",
            fields.len()
        ));
    }
    let good = |s: &&str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if let Some(s) = fields.iter().find(|s| !good(s)) {
        return Err(format!("bad key `{key}`: bad field `{s}`; {expected}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::template::Template;

    fn parse(top: &str, step: &str) -> Result<Template, TemplateError> {
        Template::from_yaml_str(
            &format!("namespace: demo\nname: t\nversion: 1.0.0\n{top}steps:\n  - {step}\n"),
            "t.yaml",
        )
    }

    #[test]
    fn template_and_step_concurrency_parse_and_round_trip() {
        let t = parse(
            "concurrency: { key: input.customer.id, limit: 2, strategy: cancel_in_progress }\n",
            "{ name: a, handler: { name: h }, concurrency: { key: input.region, limit: 1 } }",
        )
        .expect("valid");
        let c = t.concurrency.clone().expect("template concurrency");
        assert_eq!(c.limit, 2);
        assert_eq!(c.strategy, Strategy::CancelInProgress);
        let s = t.steps[0].concurrency.clone().expect("step concurrency");
        assert_eq!(s.strategy, Strategy::Queue);
        let value = serde_json::to_value(&t).expect("serialize");
        assert_eq!(
            value["steps"][0]["concurrency"],
            json!({"key": "input.region", "limit": 1, "strategy": "queue"})
        );
        assert_eq!(Template::from_json_value(value).expect("round trip"), t);
        // Without one, nothing changes in the JSON.
        let none = parse("", "{ name: a, handler: { name: h } }").expect("none");
        let value = serde_json::to_value(&none).expect("serialize");
        assert!(value.get("concurrency").is_none(), "{value}");
        assert!(value["steps"][0].get("concurrency").is_none(), "{value}");
    }

    #[test]
    fn key_values() {
        let c = |key: Option<&str>| Concurrency {
            key: key.map(str::to_string),
            limit: 1,
            strategy: Strategy::Queue,
        };
        let input = json!({"customer_id": "c1", "n": 42, "o": {"r": "eu"}, "z": null});
        assert_eq!(c(Some("input.customer_id")).key_value(&input), "c1");
        assert_eq!(c(Some("input.n")).key_value(&input), "42");
        assert_eq!(c(Some("input.o.r")).key_value(&input), "eu");
        assert_eq!(c(Some("input.o")).key_value(&input), r#"{"r":"eu"}"#);
        assert_eq!(c(Some("input.z")).key_value(&input), "");
        assert_eq!(c(Some("input.missing.x")).key_value(&input), "");
        assert_eq!(c(None).key_value(&input), "");
    }

    #[test]
    fn bad_declarations_say_why() {
        let step = |c: &str| {
            parse(
                "",
                &format!("{{ name: a, handler: {{ name: h }}, concurrency: {c} }}"),
            )
            .expect_err(c)
            .to_string()
        };
        for (c, expect) in [
            ("{ limit: 0 }", "limit is 0, must be between 1 and 10000"),
            ("{ limit: 10001 }", "limit is 10001"),
            ("{ key: customer, limit: 1 }", "expected `input.<field>`"),
            ("{ key: 'input.a b', limit: 1 }", "bad field `a b`"),
            (
                "{ key: input.a, limit: 1, other: 2 }",
                "unknown field `other`",
            ),
            (
                "{ limit: 1, strategy: cancel_newest }",
                "strategy `cancel_newest` is for a template's concurrency only",
            ),
            ("{ limit: 1, strategy: drop }", "unknown variant `drop`"),
        ] {
            let e = step(c);
            assert!(e.contains(expect), "{c}: {e}");
        }
        let e = step("{ limit: 0 }");
        assert!(e.contains("step `a` has a bad concurrency"), "{e}");
        let e = parse(
            "concurrency: { limit: 0 }\n",
            "{ name: a, handler: { name: h } }",
        )
        .expect_err("template")
        .to_string();
        assert!(e.contains("the template has a bad concurrency"), "{e}");
        let e = parse("", "{ name: a, sleep: 1m, concurrency: { limit: 1 } }")
            .expect_err("wait")
            .to_string();
        assert!(e.contains("takes no `concurrency`"), "{e}");
    }
}
