//! Turning YAML text or JSON values into a validated [`Template`].

use serde::{Deserialize, Deserializer};

use super::limits::{self, TemplateLimits};
use super::{validate::parse_version, StepTemplate, Template, TemplateError};

/// A template as written, before its version is parsed and the whole is validated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTemplate {
    namespace: String,
    name: String,
    version: VersionText,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    input_schema: Option<serde_json::Value>,
    #[serde(default)]
    pool: Option<String>,
    steps: Vec<StepTemplate>,
    #[serde(default)]
    concurrency: Option<super::Concurrency>,
}

/// A version as YAML may give it: `1.0.0` is a string, but `1.0` is a float and `1`
/// an integer. Keeping them lets the version check report what was written.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum VersionText {
    Text(String),
    Integer(u64),
    Float(f64),
}

impl VersionText {
    fn into_text(self) -> String {
        match self {
            VersionText::Text(s) => s,
            VersionText::Integer(n) => n.to_string(),
            VersionText::Float(x) => format!("{x:?}"),
        }
    }
}

impl RawTemplate {
    /// Refuses more steps or dependencies than `limits` allow, before the
    /// graph is checked.
    fn check_limits(&self, limits: &TemplateLimits) -> Result<(), TemplateError> {
        let edges = self.steps.iter().map(|s| s.depends_on.len()).sum();
        limits.check_counts(self.steps.len(), edges)
    }
}

impl TryFrom<RawTemplate> for Template {
    type Error = TemplateError;

    fn try_from(raw: RawTemplate) -> Result<Template, TemplateError> {
        let template = Template {
            version: parse_version(&raw.version.into_text())?,
            namespace: raw.namespace,
            name: raw.name,
            description: raw.description,
            input_schema: raw.input_schema,
            pool: raw.pool,
            steps: raw.steps,
            concurrency: raw.concurrency,
        };
        template.validate()?;
        Ok(template)
    }
}

/// Deserializes an optional version written as a string or a number into its text.
pub(crate) fn optional_version_text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<VersionText>::deserialize(deserializer)?.map(VersionText::into_text))
}

/// Parses YAML text within `limits`: [`limits::scan_yaml`] first, so that the
/// deserializer only ever sees text whose depth and expansion are bounded.
pub(crate) fn from_yaml_str(
    text: &str,
    limits: &TemplateLimits,
) -> Result<Template, TemplateError> {
    limits::scan_yaml(text, limits)?;
    let raw: RawTemplate =
        serde_yaml_ng::from_str(text).map_err(|e| TemplateError::from_yaml(&e))?;
    raw.check_limits(limits)?;
    Template::try_from(raw)
}

/// Parses a JSON value; within `limits` (depth, steps, dependencies) when given.
pub(crate) fn from_json_value(
    value: serde_json::Value,
    limits: Option<&TemplateLimits>,
) -> Result<Template, TemplateError> {
    if let Some(limits) = limits {
        limits::check_value_depth(&value, limits)?;
    }
    let raw: RawTemplate = serde_json::from_value(value).map_err(|e| TemplateError::Json {
        message: e.to_string(),
    })?;
    if let Some(limits) = limits {
        raw.check_limits(limits)?;
    }
    Template::try_from(raw)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::{Backoff, RetryPolicy, Template, TemplateError};

    const GOOD: &str = r#"
namespace: demo
name: sample
version: 2.1.0
description: "two steps"
input_schema: { type: object, required: [value], properties: { value: { type: integer } } }
steps:
  - name: first
    handler:
      name: math.compute
      version: 1.0.0
      config: { op: square }
  - name: second
    handler: { name: math.compute, config: { op: add, operand: 1 } }
    depends_on: [first]
    retry: { max_attempts: 5, backoff: linear, base_ms: 10, max_ms: 100, jitter: true }
    timeout_seconds: 5
"#;

    fn step(name: &str, deps: &str, extra: &str) -> String {
        format!("  - name: {name}\n    handler: {{ name: h }}\n    depends_on: [{deps}]\n{extra}")
    }

    fn template(header: &str, steps: &str) -> String {
        format!("{header}\nsteps:\n{steps}")
    }

    const HEADER: &str = "namespace: demo\nname: t\nversion: 1.0.0";

    fn rejected(text: &str) -> String {
        Template::from_yaml_str(text, "bad.yaml")
            .expect_err(text)
            .to_string()
    }

    #[test]
    fn parses_every_field_and_defaults() {
        let t = Template::from_yaml_str(GOOD, "<inline>").expect("valid");
        assert_eq!(t.key(), "demo/sample/2.1.0");
        assert_eq!(t.description.as_deref(), Some("two steps"));
        let first = &t.steps[0];
        assert_eq!(first.handler.version.as_deref(), Some("1.0.0"));
        assert_eq!(first.retry, RetryPolicy::default());
        assert_eq!(first.timeout_seconds, 30);
        assert!(first.depends_on.is_empty());
        let second = &t.steps[1];
        assert_eq!(second.handler.config, json!({"op": "add", "operand": 1}));
        assert_eq!(second.retry.backoff, Backoff::Linear);
        assert_eq!(second.retry.max_attempts, 5);
        assert!(second.retry.jitter);
        assert_eq!(second.timeout().as_secs(), 5);

        let bare = Template::from_yaml_str(&template(HEADER, &step("a", "", "")), "<inline>")
            .expect("valid");
        assert_eq!(bare.steps[0].handler.config, json!({}));
        assert_eq!(bare.steps[0].handler.version, None);
    }

    #[test]
    fn json_round_trip() {
        let t = Template::from_yaml_str(GOOD, "<inline>").expect("valid");
        let value = serde_json::to_value(&t).expect("serialize");
        assert_eq!(value["version"], json!("2.1.0"));
        assert_eq!(value["steps"][1]["retry"]["backoff"], json!("linear"));
        let text = serde_json::to_string(&t).expect("serialize");
        let back: Template = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, t);
        assert_eq!(
            Template::from_json_value(value).expect("from_json_value"),
            t
        );
    }

    #[test]
    fn deserializing_json_validates() {
        let mut value =
            serde_json::to_value(Template::from_yaml_str(GOOD, "<inline>").expect("valid"))
                .expect("serialize");
        value["steps"][1]["depends_on"] = json!(["nowhere"]);
        let msg = Template::from_json_value(value.clone())
            .expect_err("bad")
            .to_string();
        assert!(
            msg.contains("step `second` depends on unknown step `nowhere`"),
            "{msg}"
        );
        assert!(serde_json::from_value::<Template>(value).is_err());
        let msg = Template::from_json_value(json!({"namespace": "x"}))
            .expect_err("bad")
            .to_string();
        assert!(msg.contains("missing field `name`"), "{msg}");
    }

    #[test]
    fn unknown_key_is_named_with_its_location() {
        let text = template(
            HEADER,
            "  - name: a\n    handler: { name: h }\n    depnds_on: [b]\n",
        );
        let err = Template::from_yaml_str(&text, "bad.yaml").expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.starts_with("bad.yaml: invalid template YAML"), "{msg}");
        assert!(msg.contains("unknown field `depnds_on`"), "{msg}");
        let TemplateError::Yaml { line, .. } = err.problem() else {
            panic!("not a YAML error: {err}");
        };
        assert_eq!(*line, Some(7));
        let top = rejected(&format!(
            "{HEADER}\ndescripton: x\nsteps:\n{}",
            step("a", "", "")
        ));
        assert!(top.contains("unknown field `descripton`"), "{top}");
        let retry = rejected(&template(
            HEADER,
            &step("a", "", "    retry: { attempts: 3 }\n"),
        ));
        assert!(retry.contains("unknown field `attempts`"), "{retry}");
        let backoff = rejected(&template(
            HEADER,
            &step("a", "", "    retry: { backoff: quadratic }\n"),
        ));
        assert!(backoff.contains("unknown variant `quadratic`"), "{backoff}");
    }

    #[test]
    fn broken_yaml_reports_line() {
        let msg = rejected("namespace: demo\nname: [unclosed\n");
        assert!(msg.contains("invalid template YAML"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn empty_steps() {
        let msg = rejected(&format!("{HEADER}\nsteps: []\n"));
        assert_eq!(
            msg,
            "bad.yaml: template has no steps: `steps` must list at least one step"
        );
    }

    #[test]
    fn bad_versions() {
        for (written, shown) in [("1.0", "1.0"), ("abc", "abc"), ("'1.0'", "1.0"), ("1", "1")] {
            let text = template(
                &format!("namespace: demo\nname: t\nversion: {written}"),
                &step("a", "", ""),
            );
            let msg = rejected(&text);
            assert!(
                msg.starts_with(&format!("bad.yaml: bad version `{shown}`")),
                "{msg}"
            );
            assert!(msg.contains("MAJOR.MINOR.PATCH"), "{msg}");
        }
        let handler = rejected(&template(
            HEADER,
            "  - name: a\n    handler: { name: h, version: '2.0' }\n",
        ));
        assert!(handler.contains("bad version `2.0`"), "{handler}");
    }

    #[test]
    fn bad_namespaces() {
        for (ns, why) in [
            ("Demo", "must start with a lowercase letter"),
            ("1demo", "must start with a lowercase letter"),
            ("my-ns", "bad character '-'"),
            ("''", "must not be empty"),
            (&"n".repeat(41), "the maximum is 40"),
        ] {
            let text = template(
                &format!("namespace: {ns}\nname: t\nversion: 1.0.0"),
                &step("a", "", ""),
            );
            let msg = rejected(&text);
            assert!(msg.starts_with("bad.yaml: bad namespace `"), "{msg}");
            assert!(msg.contains(why), "{ns}: {msg}");
        }
        let step_name = rejected(&template(HEADER, &step("Bad", "", "")));
        assert!(step_name.contains("bad step name `Bad`"), "{step_name}");
        let handler = rejected(&template(
            HEADER,
            "  - name: a\n    handler: { name: Math }\n",
        ));
        assert!(handler.contains("bad handler name `Math`"), "{handler}");
    }

    #[test]
    fn bad_retry() {
        let inverted = rejected(&template(
            HEADER,
            &step("a", "", "    retry: { base_ms: 5000, max_ms: 100 }\n"),
        ));
        assert!(
            inverted.contains(
                "step `a` has a bad retry policy: base_ms (5000) is greater than max_ms (100)"
            ),
            "{inverted}"
        );
        let zero = rejected(&template(
            HEADER,
            &step("a", "", "    retry: { max_attempts: 0 }\n"),
        ));
        assert!(
            zero.contains("step `a` has a bad retry policy: max_attempts is 0"),
            "{zero}"
        );
        let long = rejected(&template(
            HEADER,
            &step("a", "", "    retry: { max_ms: 86400001 }\n"),
        ));
        assert!(long.contains("24 hours"), "{long}");
    }

    #[test]
    fn bad_timeout() {
        let zero = rejected(&template(
            HEADER,
            &step("a", "", "    timeout_seconds: 0\n"),
        ));
        assert!(
            zero.contains("step `a` has bad timeout_seconds 0"),
            "{zero}"
        );
        let long = rejected(&template(
            HEADER,
            &step("a", "", "    timeout_seconds: 86401\n"),
        ));
        assert!(long.contains("bad timeout_seconds 86401"), "{long}");
        let negative = rejected(&template(
            HEADER,
            &step("a", "", "    timeout_seconds: -1\n"),
        ));
        assert!(negative.contains("timeout_seconds"), "{negative}");
    }
}
