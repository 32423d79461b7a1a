//! The one error type of the template module.

use std::path::PathBuf;

use super::validate::IdentKind;

/// Everything that can be wrong with a task template, its files, or a task's input.
///
/// Every message names the exact problem; errors found while reading a file are wrapped
/// in [`TemplateError::InFile`] so the message starts with the file that is bad.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The error `source` was found in the template read from `path`.
    #[error("{path}: {source}")]
    InFile {
        /// A file path, or `<inline>` for text that did not come from a file.
        path: String,
        /// What is wrong in that file.
        source: Box<TemplateError>,
    },

    /// The text is not valid YAML, or does not have the shape of a template
    /// (missing or unknown key, wrong type). The message carries the line and column.
    #[error("invalid template YAML: {message}")]
    Yaml {
        /// The parser's message, including the location when known.
        message: String,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// 1-based column of the problem, when known.
        column: Option<usize>,
    },

    /// A JSON value does not have the shape of a template.
    #[error("invalid template JSON: {message}")]
    Json {
        /// The deserializer's message.
        message: String,
    },

    /// The template has no steps.
    #[error("template has no steps: `steps` must list at least one step")]
    EmptySteps,

    /// Two steps share a name.
    #[error("duplicate step name `{name}`: step names must be unique within a template")]
    DuplicateStep {
        /// The repeated name.
        name: String,
    },

    /// A step depends on a step that does not exist.
    #[error("step `{step}` depends on unknown step `{dependency}`")]
    UnknownDependency {
        /// The step whose `depends_on` is wrong.
        step: String,
        /// The missing step name.
        dependency: String,
    },

    /// A step lists the same dependency twice.
    #[error("step `{step}` lists dependency `{dependency}` more than once")]
    DuplicateDependency {
        /// The step whose `depends_on` is wrong.
        step: String,
        /// The repeated dependency.
        dependency: String,
    },

    /// A step depends on itself.
    #[error("step `{step}` depends on itself")]
    SelfDependency {
        /// The step.
        step: String,
    },

    /// The dependencies form a cycle. `path` is in execution order (parent before child)
    /// and ends with its first element.
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle {
        /// The steps on the cycle, first one repeated at the end.
        path: Vec<String>,
    },

    /// A version is not `MAJOR.MINOR.PATCH`.
    #[error("bad version `{value}`: {reason}")]
    BadVersion {
        /// The version as written.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A namespace, template, step or handler name breaks its naming rule.
    #[error("bad {kind} `{value}`: {reason}")]
    BadIdentifier {
        /// Which kind of name.
        kind: IdentKind,
        /// The name as written.
        value: String,
        /// Which rule failed.
        reason: String,
    },

    /// A step's retry policy is out of range.
    #[error("step `{step}` has a bad retry policy: {reason}")]
    BadRetry {
        /// The step.
        step: String,
        /// Which rule failed.
        reason: String,
    },

    /// A step's `timeout_seconds` is out of range.
    #[error("step `{step}` has bad timeout_seconds {value}: must be between 1 and 86400")]
    BadTimeout {
        /// The step.
        step: String,
        /// The value as written.
        value: u32,
    },

    /// A step declares not exactly one of `handler`, `wait_for`, `sleep`.
    #[error("step `{step}` has {found}: a step has exactly one of `handler`, `wait_for`, `sleep`")]
    StepKind {
        /// The step.
        step: String,
        /// What it has instead: `none of them`, `more than one of them`.
        found: String,
    },

    /// A step's `wait_for` or `sleep` is wrong.
    #[error("step `{step}` has a bad wait: {reason}")]
    BadWait {
        /// The step.
        step: String,
        /// Which rule failed.
        reason: String,
    },

    /// A step's `rate_limit` is wrong (its name or its key).
    #[error("step `{step}` has a bad rate_limit: {reason}")]
    BadRateLimit {
        /// The step.
        step: String,
        /// Which rule failed.
        reason: String,
    },

    /// A template's or a step's `concurrency` is wrong.
    #[error("{place} has a bad concurrency: {reason}")]
    BadConcurrency {
        /// `the template` or `step `<name>``.
        place: String,
        /// Which rule failed.
        reason: String,
    },

    /// `input_schema` is not a valid JSON Schema.
    #[error("input_schema is not a valid JSON Schema: {reason}")]
    InvalidInputSchema {
        /// What the schema checker said.
        reason: String,
    },

    /// A task's input does not satisfy the template's `input_schema`.
    #[error("task input rejected: {}", violations.join("; "))]
    InputRejected {
        /// One entry per violation: `<JSON pointer>: <message>`.
        violations: Vec<String>,
    },

    /// The template exceeds one of its [`TemplateLimits`](super::TemplateLimits):
    /// too large, too deep, too many aliases or too much expansion, too many
    /// steps or dependencies.
    #[error("{what}: over the limit {limit} = {max}")]
    LimitExceeded {
        /// The limit's configuration key, e.g. `templates.max_depth`.
        limit: &'static str,
        /// Its value.
        max: u64,
        /// What exceeded it, and where when known.
        what: String,
    },

    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// Two files define the same `namespace/name/version`.
    #[error("duplicate template `{key}`: defined in both {} and {}", first.display(), second.display())]
    DuplicateTemplate {
        /// `namespace/name/version`.
        key: String,
        /// The file read first.
        first: PathBuf,
        /// The file read second.
        second: PathBuf,
    },
}

impl TemplateError {
    /// Wraps `self` with the file (or `<inline>`) it was found in, unless it is already wrapped.
    pub fn in_file(self, path: impl Into<String>) -> TemplateError {
        match self {
            already @ TemplateError::InFile { .. } => already,
            other => TemplateError::InFile {
                path: path.into(),
                source: Box::new(other),
            },
        }
    }

    /// The error without its [`TemplateError::InFile`] wrapping, to match on the problem.
    pub fn problem(&self) -> &TemplateError {
        match self {
            TemplateError::InFile { source, .. } => source.problem(),
            other => other,
        }
    }

    /// The configuration key of the limit this error exceeds, if it is one.
    pub fn limit(&self) -> Option<&'static str> {
        match self.problem() {
            TemplateError::LimitExceeded { limit, .. } => Some(limit),
            _ => None,
        }
    }

    pub(crate) fn from_yaml(err: &serde_yaml_ng::Error) -> TemplateError {
        let location = err.location();
        TemplateError::Yaml {
            message: err.to_string(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
        }
    }
}
