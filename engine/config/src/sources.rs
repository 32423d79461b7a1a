//! The layers of a configuration (TOML texts, environment variables): reading them,
//! checking each one on its own so that an error names its exact source, and
//! merging them with figment.

use super::embedded::{self, ComponentFile};
use super::error::ConfigError;
use super::variables::{classify, ConfigWarning, VarKind};
use super::TaskerConfig;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use figment::Figment;
use std::path::{Path, PathBuf};

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "TASKER_";
/// Separator of nesting levels in an override variable's name.
pub const ENV_SEPARATOR: &str = "__";
/// Variable naming the environment; not a configuration key.
pub const ENV_VAR_ENV: &str = "TASKER_ENV";
/// Variable naming the configuration directory; not a configuration key.
pub const ENV_VAR_CONFIG_DIR: &str = "TASKER_CONFIG_DIR";
/// Alias for `database.url`.
pub const ENV_VAR_DATABASE_URL: &str = "DATABASE_URL";

/// An ordered stack of checked layers; later layers win.
pub(crate) struct Layers {
    figment: Figment,
}

impl Layers {
    pub(crate) fn new() -> Self {
        Layers {
            figment: Figment::new(),
        }
    }

    /// Adds a TOML text. `component`, when given, is the only top-level table the
    /// text may hold (the file's stem).
    pub(crate) fn add_toml(
        &mut self,
        label: &str,
        text: &str,
        component: Option<&str>,
    ) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                file: label.to_string(),
                message: describe_parse_error(text, &e),
            })?;
        if let Some(expected) = component {
            if let Some(key) = table.keys().find(|key| key.as_str() != expected) {
                return Err(ConfigError::MisplacedTable {
                    file: label.to_string(),
                    key: key.clone(),
                    expected: expected.to_string(),
                });
            }
        }
        check_alone(Figment::from(Toml::string(text)), label)?;
        self.merge(Toml::string(text));
        Ok(())
    }

    /// Adds every component file of a directory, in file-name order.
    pub(crate) fn add_dir(&mut self, dir: &Path) -> Result<(), ConfigError> {
        for (path, stem, text) in read_component_dir(dir)? {
            self.add_toml(&path.display().to_string(), &text, Some(&stem))?;
        }
        Ok(())
    }

    /// Adds compiled-in component files; `dir` is used in their labels.
    pub(crate) fn add_embedded(
        &mut self,
        dir: &str,
        files: &[ComponentFile],
    ) -> Result<(), ConfigError> {
        for (stem, text) in files {
            let label = format!("<embedded {dir}/{stem}.toml>");
            self.add_toml(&label, text, Some(stem))?;
        }
        Ok(())
    }

    /// Adds the override variables among `vars`: `TASKER_A__B=v` sets `a.b`, and
    /// `DATABASE_URL` sets `database.url` (a `TASKER_DATABASE__URL` wins over it).
    /// A foreign `TASKER_*` variable (see [`crate::variables`]) is returned as a
    /// warning, or is an error when `strict`.
    pub(crate) fn add_env_vars(
        &mut self,
        vars: &[(String, String)],
        strict: bool,
    ) -> Result<Vec<ConfigWarning>, ConfigError> {
        let alias = vars
            .iter()
            .filter(|(name, value)| name == ENV_VAR_DATABASE_URL && !value.is_empty());
        for (name, value) in alias {
            self.add_env_value(name, "database.url", Value::from(value.clone()))?;
        }
        let mut warnings = Vec::new();
        for (name, raw) in vars {
            let parts = match classify(name) {
                VarKind::Skip => continue,
                VarKind::Foreign if strict => {
                    return Err(ConfigError::UnknownVariable { name: name.clone() })
                }
                VarKind::Foreign => {
                    warnings.push(ConfigWarning::ForeignVariable { name: name.clone() });
                    continue;
                }
                VarKind::Key(parts) => parts,
            };
            let label = env_label(name);
            if parts.iter().any(|part| part.is_empty()) {
                return Err(ConfigError::UnknownKey {
                    file: label,
                    key: parts.join("."),
                });
            }
            let key = parts.join(".");
            let parsed: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
            let as_string = Value::from(raw.clone());
            // "8" is an integer, but a string key such as a bootstrap key may look like one.
            match self.add_env_value(name, &key, parsed) {
                Err(parsed_error @ ConfigError::WrongType { .. }) => self
                    .add_env_value(name, &key, as_string)
                    .map_err(|_| parsed_error)?,
                other => other?,
            }
        }
        Ok(warnings)
    }

    fn add_env_value(&mut self, name: &str, key: &str, value: Value) -> Result<(), ConfigError> {
        let provider = Serialized::default(key, value);
        check_alone(Figment::from(provider.clone()), &env_label(name))?;
        self.merge(provider);
        Ok(())
    }

    fn merge<P: figment::Provider>(&mut self, provider: P) {
        let figment = std::mem::replace(&mut self.figment, Figment::new());
        self.figment = figment.merge(provider);
    }

    /// Extracts the merged configuration (not yet validated).
    pub(crate) fn extract(&self) -> Result<TaskerConfig, ConfigError> {
        self.figment
            .extract::<TaskerConfig>()
            .map_err(|e| ConfigError::from_figment(e, "<merged configuration>"))
    }
}

/// Deserializes one layer on its own (on top of the built-in defaults), so that an
/// unknown key or a wrong type is reported against that layer.
fn check_alone(figment: Figment, label: &str) -> Result<(), ConfigError> {
    figment
        .extract::<TaskerConfig>()
        .map(|_| ())
        .map_err(|e| ConfigError::from_figment(e, label))
}

/// A one-line parse error: `line L, column C: message`.
fn describe_parse_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

fn env_label(name: &str) -> String {
    format!("environment variable {name}")
}

/// Reads the `*.toml` files of `dir`, sorted by name: (path, stem, text).
fn read_component_dir(dir: &Path) -> Result<Vec<(PathBuf, String, String)>, ConfigError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Io { path, source }
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((path, stem, text));
    }
    Ok(files)
}

/// The environment folders under `<config_dir>/environments`, sorted; empty when
/// there is no such folder.
pub(crate) fn environment_names(config_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(config_dir.join("environments")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The environments compiled into the binary, sorted.
pub(crate) fn embedded_environment_names() -> Vec<String> {
    let mut names: Vec<String> = embedded::ENVIRONMENTS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    names.sort();
    names
}
