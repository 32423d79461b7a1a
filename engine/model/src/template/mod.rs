//! Task templates: the versioned YAML definition of a task's steps and their DAG.
//!
//! A template is read with [`Template::from_yaml_str`], [`load_file`] or [`load_paths`]
//! (which all validate it, within [`TemplateLimits`]), stored as JSON (it
//! round-trips through `serde_json`, and deserializing validates again) and
//! queried for its graph ([`Template::levels`], [`Template::roots`],
//! [`Template::children_of`]) and input rules ([`Template::validate_input`]).
//! The YAML reference is `examples/templates/README.md`.

mod concurrency;
mod error;
mod graph;
mod limits;
mod load;
mod parse;
mod rate_limit;
mod retry;
mod schema;
mod validate;
mod wait;
mod yaml_scan;

use serde::{Deserialize, Serialize};

pub use concurrency::{Concurrency, Strategy, MAX_CONCURRENCY};
pub use error::TemplateError;
pub use limits::{
    json_depth, scan_json, scan_yaml, TemplateLimits, YamlShape, DEFAULT_MAX_ALIASES,
    DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, DEFAULT_MAX_EDGES, DEFAULT_MAX_EXPANDED_BYTES,
    DEFAULT_MAX_STEPS, MAX_DEPTH_CEILING, VALUE_COST,
};
pub use load::{load_file, load_file_with, load_paths, load_paths_with};
pub use rate_limit::{
    check_limit, format_rate, parse_rate, validate_limit_name, RateLimitRef, MAX_BURST,
    MAX_PER_SECOND, MIN_PER_SECOND,
};
pub use retry::{Backoff, RetryPolicy, MAX_ATTEMPTS_LIMIT, MAX_DELAY_MS_LIMIT};
pub use schema::InputValidator;
pub use validate::{parse_version, validate_identifier, IdentKind, MAX_TIMEOUT_SECONDS};
pub use wait::{
    format_duration, parse_duration, Wait, MAX_WAIT_SECONDS, SIGNAL_HANDLER, SLEEP_HANDLER,
};

/// A task template: one `namespace/name/version`, its input schema and its steps.
///
/// Deserializing (from YAML or JSON) validates it; a value built by hand should be
/// checked with [`Template::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "parse::RawTemplate")]
pub struct Template {
    /// Namespace; also names its default pool. `^[a-z][a-z0-9_]*$`, 1..=40 characters.
    pub namespace: String,
    /// Template name. `^[a-z][a-z0-9_]*$`, 1..=63 characters.
    pub name: String,
    /// `MAJOR.MINOR.PATCH`; serialized as a string such as `"1.0.0"`.
    pub version: semver::Version,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema the task's input context must satisfy; none accepts any object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<serde_json::Value>,
    /// The pool of steps that name none; none means the namespace's own pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The steps, in declaration order.
    pub steps: Vec<StepTemplate>,
    /// At most `limit` tasks of the template run at once per key value
    /// (`concurrency`; see [`Concurrency`]); `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
}

/// One step of a template.
///
/// Written with exactly one of `handler`, `wait_for` or `sleep` (a wait
/// step, see [`Wait`]); read and written through `wait::RawStep`, so a
/// handler step's JSON is unchanged by wait steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "wait::RawStep", into = "wait::RawStep")]
pub struct StepTemplate {
    /// Unique within the template. `^[a-z][a-z0-9_]*$`, 1..=63 characters.
    pub name: String,
    /// The handler that runs the step; for a wait step a placeholder naming
    /// its kind ([`Wait::handler`]), which no worker runs.
    pub handler: HandlerRef,
    /// Names of the steps that must complete before this one; empty for a root.
    pub depends_on: Vec<String>,
    /// How often and how fast the step is retried (a wait step: once).
    pub retry: RetryPolicy,
    /// Longest one attempt may run, `1..=86400`; default 30.
    pub timeout_seconds: u32,
    /// The worker pool that runs the step (see [`Template::pool_of`]); none
    /// means the template's `pool`, else the namespace's.
    pub pool: Option<String>,
    /// What the step waits for instead of running a handler (`wait_for`,
    /// `sleep`); `None` for a handler step.
    pub wait: Option<Wait>,
    /// The named rate limit the step's starts count against (`rate_limit`;
    /// see [`RateLimitRef`]); `None`: unlimited.
    pub rate_limit: Option<RateLimitRef>,
    /// At most `limit` runs of this step at once per key value, across the
    /// template's tasks (`concurrency`, strategy `queue`); `None`: unlimited.
    pub concurrency: Option<Concurrency>,
}

/// Which handler runs a step, and its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerRef {
    /// Handler name, e.g. `math.compute`. `^[a-z][a-z0-9_.\-]*$`, 1..=100 characters.
    pub name: String,
    /// `MAJOR.MINOR.PATCH` of the handler, when it matters (WASM handlers).
    #[serde(
        default,
        deserialize_with = "parse::optional_version_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<String>,
    /// Free-form configuration handed to the handler; default `{}`.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
}

/// `timeout_seconds` when a step gives none.
pub(crate) const DEFAULT_TIMEOUT_SECONDS: u32 = 30;

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl Template {
    /// Parses and validates YAML text within the default [`TemplateLimits`].
    /// `source` (a file path or `<inline>`) prefixes every error message.
    pub fn from_yaml_str(text: &str, source: &str) -> Result<Template, TemplateError> {
        Template::from_yaml_str_with(text, source, &TemplateLimits::default())
    }

    /// Parses and validates YAML text within `limits` (size, depth, aliases and
    /// their expansion, checked before the text is deserialized; then steps
    /// and dependencies). `source` prefixes every error message.
    pub fn from_yaml_str_with(
        text: &str,
        source: &str,
        limits: &TemplateLimits,
    ) -> Result<Template, TemplateError> {
        parse::from_yaml_str(text, limits).map_err(|e| e.in_file(source))
    }

    /// Parses and validates a JSON value (a stored definition). No
    /// [`TemplateLimits`]: a definition registered under higher limits still loads.
    pub fn from_json_value(value: serde_json::Value) -> Result<Template, TemplateError> {
        parse::from_json_value(value, None)
    }

    /// Parses and validates a JSON value (an HTTP request body) within
    /// `limits`: depth, steps and dependencies. (Its size is the text's:
    /// [`scan_json`] checks it before the text is deserialized.)
    pub fn from_json_value_with(
        value: serde_json::Value,
        limits: &TemplateLimits,
    ) -> Result<Template, TemplateError> {
        parse::from_json_value(value, Some(limits))
    }

    /// Refuses more steps or dependencies than `limits` allow.
    pub fn check_limits(&self, limits: &TemplateLimits) -> Result<(), TemplateError> {
        let edges = self.steps.iter().map(|s| s.depends_on.len()).sum();
        limits.check_counts(self.steps.len(), edges)
    }

    /// The pool whose workers run `step`: the step's own `pool`, else the
    /// template's, else the namespace. A pool is one step queue
    /// (`steps_<pool>`); only workers serving the pool read its messages.
    pub fn pool_of<'a>(&'a self, step: &'a StepTemplate) -> &'a str {
        step.pool
            .as_deref()
            .or(self.pool.as_deref())
            .unwrap_or(&self.namespace)
    }

    /// Every pool the template's steps run in, sorted, without repeats.
    pub fn pools(&self) -> Vec<&str> {
        let mut pools: Vec<&str> = self.steps.iter().map(|s| self.pool_of(s)).collect();
        pools.sort_unstable();
        pools.dedup();
        pools
    }

    /// `namespace/name/version`, e.g. `demo/diamond/1.0.0`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.name, self.version)
    }
}

impl StepTemplate {
    /// `timeout_seconds` as a duration.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.timeout_seconds))
    }
}
