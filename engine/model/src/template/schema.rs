//! The template's `input_schema`: checking it is a valid JSON Schema, and checking a
//! task's input against it.

use serde_json::Value;

use super::{Template, TemplateError};

/// Checks `schema` is a JSON Schema that `jsonschema` can compile (draft detected from
/// `$schema`, 2020-12 by default).
pub(crate) fn check_schema(schema: &Value) -> Result<(), TemplateError> {
    compile(schema).map(|_| ())
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, TemplateError> {
    let invalid = |reason: String| TemplateError::InvalidInputSchema { reason };
    if !schema.is_object() && !schema.is_boolean() {
        return Err(invalid(format!(
            "a schema must be an object or a boolean, not {schema}"
        )));
    }
    // try_validate does not panic on an unknown `$schema`, unlike meta::validate.
    match jsonschema::meta::try_validate(schema) {
        Err(e) => return Err(invalid(e.to_string())),
        Ok(Err(e)) => return Err(invalid(describe(&e))),
        Ok(Ok(())) => {}
    }
    jsonschema::validator_for(schema).map_err(|e| invalid(describe(&e)))
}

/// `<JSON pointer>: <message>`, with `(root)` for the empty pointer.
fn describe(error: &jsonschema::ValidationError<'_>) -> String {
    let path = error.instance_path.as_str();
    let path = if path.is_empty() { "(root)" } else { path };
    format!("{path}: {error}")
}

/// A template's `input_schema`, compiled once to check many task inputs
/// ([`Template::input_validator`]).
pub struct InputValidator {
    schema: Option<jsonschema::Validator>,
}

impl std::fmt::Debug for InputValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputValidator")
            .field("has_schema", &self.schema.is_some())
            .finish()
    }
}

impl InputValidator {
    /// Checks a task's input: it must be a JSON object and, when the template has
    /// an `input_schema`, satisfy it. The error lists every violation with its JSON
    /// pointer, e.g. `/order_id: "abc" is not of type "string"`.
    pub fn validate(&self, input: &Value) -> Result<(), TemplateError> {
        if !input.is_object() {
            return Err(TemplateError::InputRejected {
                violations: vec![format!(
                    "(root): task input must be a JSON object, not {input}"
                )],
            });
        }
        let Some(validator) = &self.schema else {
            return Ok(());
        };
        let violations: Vec<String> = validator.iter_errors(input).map(|e| describe(&e)).collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(TemplateError::InputRejected { violations })
        }
    }
}

impl Template {
    /// Compiles the `input_schema` (if any) for [`InputValidator::validate`].
    pub fn input_validator(&self) -> Result<InputValidator, TemplateError> {
        Ok(InputValidator {
            schema: self.input_schema.as_ref().map(compile).transpose()?,
        })
    }

    /// Checks one task input ([`InputValidator::validate`]), compiling the schema
    /// for this call; to check many, keep an [`InputValidator`].
    pub fn validate_input(&self, input: &Value) -> Result<(), TemplateError> {
        self.input_validator()?.validate(input)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::{Template, TemplateError};

    fn with_schema(schema: &str) -> Result<Template, TemplateError> {
        let text = format!(
            "namespace: t\nname: s\nversion: 1.0.0\ninput_schema: {schema}\nsteps:\n  - name: a\n    handler: {{ name: h }}\n"
        );
        Template::from_yaml_str(&text, "<inline>")
    }

    #[test]
    fn invalid_schemas_are_rejected_at_load() {
        for bad in [
            r#"{"type": "strin"}"#,
            r#"{"type": 5}"#,
            r#"{"minimum": "x"}"#,
            "[1]",
        ] {
            let msg = with_schema(bad).expect_err(bad).to_string();
            assert!(
                msg.contains("input_schema is not a valid JSON Schema"),
                "{bad}: {msg}"
            );
        }
        let unknown_draft = with_schema(r#"{"$schema": "not-a-uri", "type": "object"}"#)
            .expect_err("unknown draft")
            .to_string();
        assert!(
            unknown_draft.contains("input_schema is not a valid JSON Schema"),
            "{unknown_draft}"
        );
    }

    #[test]
    fn no_schema_accepts_any_object_only() {
        let t = Template::from_yaml_str(
            "namespace: t\nname: s\nversion: 1.0.0\nsteps:\n  - { name: a, handler: { name: h } }\n",
            "<inline>",
        )
        .expect("template");
        t.validate_input(&json!({"anything": [1, 2]}))
            .expect("object accepted");
        let msg = t
            .validate_input(&json!([1]))
            .expect_err("array")
            .to_string();
        assert!(msg.contains("task input must be a JSON object"), "{msg}");
    }

    #[test]
    fn every_violation_is_listed_with_its_path() {
        let t = with_schema(
            r#"{"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}, "n": {"type": "integer", "maximum": 3}}}"#,
        )
        .expect("template");
        t.validate_input(&json!({"id": 7})).expect("valid");
        let err = t
            .validate_input(&json!({"id": "abc", "n": 9}))
            .expect_err("invalid");
        let TemplateError::InputRejected { violations } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(
            violations.contains(&r#"/id: "abc" is not of type "integer""#.to_string()),
            "{violations:?}"
        );
        assert!(
            violations.iter().any(|v| v.starts_with("/n: 9")),
            "{violations:?}"
        );
    }
}
