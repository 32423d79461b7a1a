//! Naming rules, version rules and [`Template::validate`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{graph, schema, Template, TemplateError};

/// Longest `timeout_seconds` a step may have: 24 hours.
pub const MAX_TIMEOUT_SECONDS: u32 = 86_400;

/// The kinds of names a template contains, each with its own rule.
///
/// All start with a lowercase ASCII letter and use `a-z`, `0-9`, `_`; handler names may
/// also use `.` and `-`. Namespaces become part of PostgreSQL/PGMQ queue names, hence
/// their short maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentKind {
    /// A template namespace: `^[a-z][a-z0-9_]*$`, at most 40 characters.
    Namespace,
    /// A template name: `^[a-z][a-z0-9_]*$`, at most 63 characters.
    TemplateName,
    /// A step name: `^[a-z][a-z0-9_]*$`, at most 63 characters.
    StepName,
    /// A handler name: `^[a-z][a-z0-9_.\-]*$`, at most 100 characters.
    HandlerName,
    /// A worker pool (a step queue, like a namespace's): `^[a-z][a-z0-9_]*$`,
    /// at most 40 characters.
    Pool,
    /// The name of a signal a step waits for (`wait_for.signal`):
    /// `^[a-z][a-z0-9_]*$`, at most 63 characters.
    SignalName,
}

impl IdentKind {
    /// The longest name allowed, in characters.
    pub fn max_len(self) -> usize {
        match self {
            IdentKind::Namespace | IdentKind::Pool => 40,
            IdentKind::TemplateName | IdentKind::StepName | IdentKind::SignalName => 63,
            IdentKind::HandlerName => 100,
        }
    }

    fn allows(self, c: char) -> bool {
        let base = c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        match self {
            IdentKind::HandlerName => base || c == '.' || c == '-',
            _ => base,
        }
    }

    fn allowed_description(self) -> &'static str {
        match self {
            IdentKind::HandlerName => "a-z, 0-9, `_`, `.`, `-`",
            _ => "a-z, 0-9, `_`",
        }
    }
}

impl fmt::Display for IdentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentKind::Namespace => "namespace",
            IdentKind::TemplateName => "template name",
            IdentKind::StepName => "step name",
            IdentKind::HandlerName => "handler name",
            IdentKind::Pool => "pool",
            IdentKind::SignalName => "signal name",
        })
    }
}

/// Checks `value` against the rule for `kind`; the error says which rule failed.
pub fn validate_identifier(kind: IdentKind, value: &str) -> Result<(), TemplateError> {
    let bad = |reason: String| TemplateError::BadIdentifier {
        kind,
        value: value.to_string(),
        reason,
    };
    let Some(first) = value.chars().next() else {
        return Err(bad("must not be empty".to_string()));
    };
    let len = value.chars().count();
    if len > kind.max_len() {
        return Err(bad(format!(
            "too long: {len} characters, the maximum is {}",
            kind.max_len()
        )));
    }
    if !first.is_ascii_lowercase() {
        return Err(bad(format!(
            "must start with a lowercase letter a-z, not {first:?}"
        )));
    }
    if let Some((pos, c)) = value.chars().enumerate().find(|&(_, c)| !kind.allows(c)) {
        return Err(bad(format!(
            "bad character {c:?} at position {}; allowed: {}",
            pos + 1,
            kind.allowed_description()
        )));
    }
    Ok(())
}

/// Parses a `MAJOR.MINOR.PATCH` version (no pre-release or build suffix).
pub fn parse_version(value: &str) -> Result<semver::Version, TemplateError> {
    let bad = |reason: String| TemplateError::BadVersion {
        value: value.to_string(),
        reason,
    };
    let version = semver::Version::parse(value.trim())
        .map_err(|e| bad(format!("expected MAJOR.MINOR.PATCH such as 1.0.0 ({e})")))?;
    if !version.pre.is_empty() || !version.build.is_empty() {
        return Err(bad(
            "pre-release and build suffixes are not supported, use MAJOR.MINOR.PATCH".to_string(),
        ));
    }
    Ok(version)
}

impl Template {
    /// Checks every rule: names, versions, steps and their graph, retry policies,
    /// timeouts and the input schema. Returns the first problem found.
    pub fn validate(&self) -> Result<(), TemplateError> {
        validate_identifier(IdentKind::Namespace, &self.namespace)?;
        validate_identifier(IdentKind::TemplateName, &self.name)?;
        if let Some(pool) = &self.pool {
            validate_identifier(IdentKind::Pool, pool)?;
        }
        if !self.version.pre.is_empty() || !self.version.build.is_empty() {
            parse_version(&self.version.to_string())?;
        }
        if self.steps.is_empty() {
            return Err(TemplateError::EmptySteps);
        }
        // Signal name -> the step that waits for it: one step per name.
        let mut signals = std::collections::HashMap::new();
        for step in &self.steps {
            validate_identifier(IdentKind::StepName, &step.name)?;
            validate_identifier(IdentKind::HandlerName, &step.handler.name)?;
            if let Some(pool) = &step.pool {
                validate_identifier(IdentKind::Pool, pool)?;
            }
            if let Some(version) = &step.handler.version {
                parse_version(version)?;
            }
            step.retry
                .check()
                .map_err(|reason| TemplateError::BadRetry {
                    step: step.name.clone(),
                    reason,
                })?;
            if step.timeout_seconds == 0 || step.timeout_seconds > MAX_TIMEOUT_SECONDS {
                return Err(TemplateError::BadTimeout {
                    step: step.name.clone(),
                    value: step.timeout_seconds,
                });
            }
            if let Some(wait) = &step.wait {
                check_wait(step, wait, &mut signals)?;
            }
            if let Some(limit) = &step.rate_limit {
                limit.check(&step.name)?;
            }
            if let Some(c) = &step.concurrency {
                c.check(Some(&step.name))?;
            }
        }
        if let Some(c) = &self.concurrency {
            c.check(None)?;
        }
        graph::check(&self.steps)?;
        if let Some(input_schema) = &self.input_schema {
            schema::check_schema(input_schema)?;
        }
        Ok(())
    }
}

/// A wait step's rules: a valid signal name, waited for by no other step of
/// the template; a length within bounds; no pool (it runs in none).
fn check_wait<'a>(
    step: &'a super::StepTemplate,
    wait: &'a super::Wait,
    signals: &mut std::collections::HashMap<&'a str, &'a str>,
) -> Result<(), TemplateError> {
    let bad = |reason: String| TemplateError::BadWait {
        step: step.name.clone(),
        reason,
    };
    if let Some(signal) = wait.signal() {
        validate_identifier(IdentKind::SignalName, signal)?;
        if let Some(first) = signals.insert(signal, &step.name) {
            return Err(bad(format!(
                "signal `{signal}` is waited for by both `{first}` and `{}`; a signal name \
                 is unique in a template",
                step.name
            )));
        }
    }
    wait.check().map_err(bad)?;
    if step.pool.is_some() {
        return Err(bad("a wait step runs in no pool: it takes no `pool`".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(kind: IdentKind, value: &str) -> String {
        validate_identifier(kind, value)
            .expect_err(value)
            .to_string()
    }

    #[test]
    fn good_identifiers() {
        for v in ["demo", "a", "order_fulfillment", "v2_x"] {
            validate_identifier(IdentKind::Namespace, v).expect(v);
        }
        validate_identifier(IdentKind::Namespace, &"a".repeat(40)).expect("40 chars");
        validate_identifier(IdentKind::HandlerName, "math.compute-v2_x").expect("handler");
    }

    #[test]
    fn bad_namespaces_name_the_rule() {
        assert_eq!(
            reason(IdentKind::Namespace, ""),
            "bad namespace ``: must not be empty"
        );
        let upper = reason(IdentKind::Namespace, "Demo");
        assert!(
            upper.contains("must start with a lowercase letter"),
            "{upper}"
        );
        let inner_upper = reason(IdentKind::Namespace, "deMo");
        assert!(
            inner_upper.contains("bad character 'M' at position 3"),
            "{inner_upper}"
        );
        let digit = reason(IdentKind::Namespace, "1demo");
        assert!(
            digit.contains("must start with a lowercase letter a-z, not '1'"),
            "{digit}"
        );
        let hyphen = reason(IdentKind::Namespace, "my-ns");
        assert!(
            hyphen.contains("bad character '-' at position 3"),
            "{hyphen}"
        );
        let long = reason(IdentKind::Namespace, &"a".repeat(41));
        assert!(
            long.contains("too long: 41 characters, the maximum is 40"),
            "{long}"
        );
        let dot = reason(IdentKind::Namespace, "a.b");
        assert!(dot.contains("bad character '.'"), "{dot}");
    }

    #[test]
    fn other_kinds_have_their_own_limits() {
        validate_identifier(IdentKind::StepName, &"s".repeat(63)).expect("63");
        assert!(reason(IdentKind::StepName, &"s".repeat(64)).contains("maximum is 63"));
        assert!(reason(IdentKind::HandlerName, &"h".repeat(101)).contains("maximum is 100"));
        assert!(reason(IdentKind::StepName, "a.b").starts_with("bad step name `a.b`"));
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("1.2.3").expect("ok"),
            semver::Version::new(1, 2, 3)
        );
        for bad in ["1.0", "abc", "1", "", "1.0.0-beta", "01.0.0"] {
            let msg = parse_version(bad).expect_err(bad).to_string();
            assert!(msg.starts_with(&format!("bad version `{bad}`")), "{msg}");
        }
    }
}
