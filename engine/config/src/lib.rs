//! tasker-config: typed sections loaded from component TOML files, environment
//! overrides and `TASKER_*` environment variables.
//!
//! Invariants: no I/O beyond reading configuration files and the
//! environment; a bad value is reported with its file (or variable) and
//! dotted key, never defaulted silently; secrets print redacted.
//!
//! Layers, later ones winning:
//! 1. `<dir>/base/*.toml` (or the copies compiled into the binary);
//! 2. `<dir>/environments/<env>/*.toml`;
//! 3. `DATABASE_URL` (alias of `database.url`), then `TASKER_<SECTION>__<KEY>=value`
//!    variables (`__` separates nesting levels; `TASKER_ENV` and
//!    `TASKER_CONFIG_DIR` select the environment and directory and are not keys).
//!    Any other `TASKER_*` name that addresses no section (`TASKER_BIN`) is
//!    ignored with a [`ConfigWarning`] ([`TaskerConfig::load_with_warnings`]),
//!    or refused in strict mode (`TASKER_STRICT_CONFIG=1`,
//!    [`LoadOptions::strict`], [`check_variables`]).
//!
//! Each layer is checked on its own before merging, so an unknown key or a wrong
//! type is reported with the exact file (or variable) and dotted key. The merged
//! result is then validated ([`TaskerConfig::validate`]). `config/README.md`
//! documents every key.

mod embedded;
mod error;
mod retention;
mod secret;
mod sections;
mod sources;
mod validate;
mod variables;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use retention::RetentionConfig;
pub use secret::{redact_url, Secret, REDACTED};
pub use sections::{
    ChannelConfig, CircuitBreakerConfig, ClientConfig, DatabaseConfig, LogFormat, Mode,
    OrchestrationConfig, QueueConfig, StaleTaskAction, TelemetryConfig, TemplatesConfig,
    WasmConfig, WebAuthConfig, WebConfig, WorkerConfig,
};
pub use sources::{
    ENV_PREFIX, ENV_SEPARATOR, ENV_VAR_CONFIG_DIR, ENV_VAR_DATABASE_URL, ENV_VAR_ENV,
};
pub use validate::{MAX_BATCH_SIZE, MAX_NAMESPACE_LEN, MAX_TEMPLATE_DEPTH};
pub use variables::{ConfigWarning, ENV_VAR_STRICT, NON_KEY_VARS};

use serde::{Deserialize, Serialize};
use sources::Layers;
use std::path::{Path, PathBuf};

/// The environment used when none is given.
pub const DEFAULT_ENV: &str = "development";
/// The configuration directory looked for, relative to the working directory.
pub const DEFAULT_CONFIG_DIR: &str = "config/tasker";

/// The whole configuration: one field per component file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskerConfig {
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[queues]`.
    pub queues: QueueConfig,
    /// `[orchestration]`.
    pub orchestration: OrchestrationConfig,
    /// `[worker]`.
    pub worker: WorkerConfig,
    /// `[channels]`.
    pub channels: ChannelConfig,
    /// `[circuit_breakers]`.
    pub circuit_breakers: CircuitBreakerConfig,
    /// `[web]` and `[web.auth]`.
    pub web: WebConfig,
    /// `[client]`: how the CLI reaches the admin API.
    pub client: ClientConfig,
    /// `[telemetry]`.
    pub telemetry: TelemetryConfig,
    /// `[wasm]`: WASM handlers.
    pub wasm: WasmConfig,
    /// `[templates]`: limits on reading templates.
    pub templates: TemplatesConfig,
    /// `[retention]`: removing finished tasks after an age.
    pub retention: RetentionConfig,
}

/// Where and how [`TaskerConfig::load`] looks for configuration.
///
/// `Debug` prints the names of `vars` only, never their values.
#[derive(Clone)]
pub struct LoadOptions {
    /// The configuration directory (holding `base/` and `environments/`).
    /// `None`: `TASKER_CONFIG_DIR`, else `./config/tasker` if it exists, else the
    /// files compiled into the binary.
    pub config_dir: Option<PathBuf>,
    /// The environment. `None`: `TASKER_ENV`, else `development`.
    pub env: Option<String>,
    /// Whether `TASKER_*` and `DATABASE_URL` variables override keys.
    /// (`TASKER_ENV` and `TASKER_CONFIG_DIR` are read either way.)
    pub use_env_vars: bool,
    /// The environment variables to use instead of the process's (a seam for
    /// tests and embedders). `None`: the process environment.
    pub vars: Option<Vec<(String, String)>>,
    /// Strict mode: a `TASKER_*` variable that is not a key is an error, not a
    /// warning. Also turned on by `TASKER_STRICT_CONFIG=1` among the variables.
    pub strict: bool,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let var_names = self.vars.as_ref().map(|vars| {
            vars.iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
        });
        f.debug_struct("LoadOptions")
            .field("config_dir", &self.config_dir)
            .field("env", &self.env)
            .field("use_env_vars", &self.use_env_vars)
            .field("vars", &var_names)
            .field("strict", &self.strict)
            .finish()
    }
}

impl Default for LoadOptions {
    /// Everything from the process environment, env-var overrides on.
    fn default() -> Self {
        LoadOptions {
            config_dir: None,
            env: None,
            use_env_vars: true,
            vars: None,
            strict: false,
        }
    }
}

impl LoadOptions {
    /// Options that read only `config_dir` and `env`, never the process environment.
    pub fn hermetic(config_dir: Option<PathBuf>, env: &str) -> Self {
        LoadOptions {
            config_dir,
            env: Some(env.to_string()),
            use_env_vars: false,
            vars: Some(Vec::new()),
            strict: false,
        }
    }

    /// The variables in effect: `vars`, else the process environment (variables
    /// that are not valid UTF-8 are skipped).
    fn variables(&self) -> Vec<(String, String)> {
        match &self.vars {
            Some(vars) => vars.clone(),
            None => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }
}

/// Where the files of a load come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A configuration directory.
    Dir(PathBuf),
    /// The files compiled into the binary.
    Embedded,
}

/// What [`LoadOptions`] resolve to: the file source and the environment name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Where the files come from.
    pub source: ConfigSource,
    /// The environment name.
    pub env: String,
}

impl LoadOptions {
    /// Resolves the directory and environment (see the field docs) without loading.
    pub fn resolve(&self) -> Resolved {
        let vars = self.variables();
        let lookup = |name: &str| {
            vars.iter()
                .find(|(key, value)| key == name && !value.is_empty())
                .map(|(_, value)| value.clone())
        };
        let dir = self
            .config_dir
            .clone()
            .or_else(|| lookup(ENV_VAR_CONFIG_DIR).map(PathBuf::from))
            .or_else(|| {
                let local = PathBuf::from(DEFAULT_CONFIG_DIR);
                local.is_dir().then_some(local)
            });
        Resolved {
            source: dir.map_or(ConfigSource::Embedded, ConfigSource::Dir),
            env: self
                .env
                .clone()
                .or_else(|| lookup(ENV_VAR_ENV))
                .unwrap_or_else(|| DEFAULT_ENV.to_string()),
        }
    }
}

/// A loaded configuration and what is worth telling about it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The merged, validated configuration.
    pub config: TaskerConfig,
    /// Things ignored on the way (foreign `TASKER_*` variables), for the caller
    /// to show once its logging is set up.
    pub warnings: Vec<ConfigWarning>,
}

impl TaskerConfig {
    /// Loads, merges and validates the configuration described by `options`.
    /// Warnings ([`TaskerConfig::load_with_warnings`]) are logged with
    /// `tracing::warn!`: a caller that sets its logging up only after loading
    /// should call `load_with_warnings` and show them itself.
    pub fn load(options: &LoadOptions) -> Result<TaskerConfig, ConfigError> {
        let loaded = Self::load_with_warnings(options)?;
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        Ok(loaded.config)
    }

    /// [`TaskerConfig::load`], returning the warnings instead of logging them.
    pub fn load_with_warnings(options: &LoadOptions) -> Result<Loaded, ConfigError> {
        let resolved = options.resolve();
        let mut layers = Layers::new();
        match &resolved.source {
            ConfigSource::Dir(dir) => {
                let available = sources::environment_names(dir);
                if !available.contains(&resolved.env) {
                    return Err(ConfigError::UnknownEnvironment {
                        name: resolved.env,
                        available,
                    });
                }
                layers.add_dir(&dir.join("base"))?;
                layers.add_dir(&dir.join("environments").join(&resolved.env))?;
            }
            ConfigSource::Embedded => {
                let files = embedded::ENVIRONMENTS
                    .iter()
                    .find(|(name, _)| *name == resolved.env)
                    .map(|(_, files)| *files)
                    .ok_or_else(|| ConfigError::UnknownEnvironment {
                        name: resolved.env.clone(),
                        available: sources::embedded_environment_names(),
                    })?;
                layers.add_embedded("base", embedded::BASE)?;
                layers.add_embedded(&format!("environments/{}", resolved.env), files)?;
            }
        }
        let mut warnings = Vec::new();
        if options.use_env_vars {
            let vars = options.variables();
            let strict = options.strict || variables::strict_from(&vars)?;
            warnings = layers.add_env_vars(&vars, strict)?;
        }
        let config = layers.extract()?;
        config.validate()?;
        Ok(Loaded { config, warnings })
    }

    /// [`TaskerConfig::load`] with [`LoadOptions::default`].
    pub fn load_default() -> Result<TaskerConfig, ConfigError> {
        Self::load(&LoadOptions::default())
    }

    /// A configuration from one TOML text (any sections, e.g. `[worker]` and
    /// `[database]` together) on top of the compiled-in base defaults. No
    /// environment files or variables are read. Used where a configuration is
    /// handed over as text, as through the C ABI.
    pub fn from_toml_str(text: &str) -> Result<TaskerConfig, ConfigError> {
        let mut layers = Layers::new();
        layers.add_embedded("base", embedded::BASE)?;
        layers.add_toml("<inline TOML>", text, None)?;
        let config = layers.extract()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and cross-key rules; the error names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self)
    }

    /// The configuration as TOML, with `database.url`'s password and
    /// `web.auth.bootstrap_key` and `client.api_key` replaced by `***`.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = shown
            .database
            .url
            .as_ref()
            .map(|url| Secret::new(redact_url(url.expose())));
        shown.web.auth.bootstrap_key = shown
            .web
            .auth
            .bootstrap_key
            .as_ref()
            .map(|_| Secret::new(REDACTED));
        shown.client.api_key = shown.client.api_key.as_ref().map(|_| Secret::new(REDACTED));
        toml::to_string(&shown)
            .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }
}

/// Checks the override variables of `options` (the process environment when
/// its `vars` is `None`) as strict mode would, each on its own: every
/// `TASKER_*` variable must be a key (or one of [`NON_KEY_VARS`]) with a value
/// of the key's type. Returns every problem, for `tasker config validate`;
/// cross-key rules are checked when a configuration is loaded.
pub fn check_variables(options: &LoadOptions) -> Vec<ConfigError> {
    let vars = options.variables();
    let mut problems = Vec::new();
    if let Err(e) = variables::strict_from(&vars) {
        problems.push(e);
    }
    for var in &vars {
        let mut layers = Layers::new();
        if let Err(e) = layers.add_env_vars(std::slice::from_ref(var), true) {
            problems.push(e);
        }
    }
    problems
}

/// Loads every environment found under `<config_dir>/environments`, with no
/// environment variables, for `tasker config validate`. Each entry is the
/// environment name and its outcome. An unreadable `environments` folder gives
/// one entry named `environments` holding the error.
pub fn validate_environments(
    config_dir: &Path,
) -> Vec<(String, Result<TaskerConfig, ConfigError>)> {
    let environments = config_dir.join("environments");
    if let Err(source) = std::fs::read_dir(&environments) {
        let error = ConfigError::Io {
            path: environments,
            source,
        };
        return vec![("environments".to_string(), Err(error))];
    }
    sources::environment_names(config_dir)
        .into_iter()
        .map(|env| {
            let options = LoadOptions::hermetic(Some(config_dir.to_path_buf()), &env);
            let outcome = TaskerConfig::load(&options);
            (env, outcome)
        })
        .collect()
}
