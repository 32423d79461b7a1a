//! [`ConfigError`]: every way loading a configuration fails, each naming the
//! source (file or environment variable) and the dotted key.

use figment::error::{Actual, Kind};
use std::path::PathBuf;

/// A configuration error. `file` fields hold the source: a file path,
/// `environment variable NAME`, `<embedded base/x.toml>` or `<inline TOML>`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not valid TOML.
    #[error("{file}: invalid TOML: {message}")]
    Parse {
        /// The source.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A key that no section defines.
    #[error("{file}: unknown key '{key}'")]
    UnknownKey {
        /// The source.
        file: String,
        /// The dotted key, e.g. `worker.concurency`.
        key: String,
    },
    /// A `TASKER_*` variable that names no configuration key, in strict mode
    /// (otherwise it is a [`crate::ConfigWarning`]).
    #[error(
        "environment variable {name}: not a configuration key (keys are TASKER_<SECTION>__<KEY>)"
    )]
    UnknownVariable {
        /// The variable's name.
        name: String,
    },
    /// A value of the wrong type.
    #[error("{file}: '{key}' has the wrong type: expected {expected}, found {found}")]
    WrongType {
        /// The source.
        file: String,
        /// The dotted key.
        key: String,
        /// What the key takes, e.g. `an integer`.
        expected: String,
        /// What was given, e.g. `a string "8"`.
        found: String,
    },
    /// A value of the right type that the key does not accept (out of range,
    /// unknown enum variant).
    #[error("{file}: '{key}' has a bad value: {message}")]
    BadValue {
        /// The source.
        file: String,
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A component file holding a top-level key other than its own table.
    #[error(
        "{file}: top-level key '{key}' does not belong here; this file may hold only [{expected}]"
    )]
    MisplacedTable {
        /// The source.
        file: String,
        /// The top-level key found.
        key: String,
        /// The one table the file may hold (its file name).
        expected: String,
    },
    /// An environment with no folder under `environments/`.
    #[error("unknown environment '{name}'; available: {}", available.join(", "))]
    UnknownEnvironment {
        /// The requested name.
        name: String,
        /// The environments found.
        available: Vec<String>,
    },
    /// A value that fails validation of the merged configuration.
    #[error("invalid configuration: '{key}' {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Any other error from a source.
    #[error("{file}: {message}")]
    Other {
        /// The source.
        file: String,
        /// The message.
        message: String,
    },
}

impl ConfigError {
    /// Converts a figment extraction error for a single source into a
    /// [`ConfigError`] naming that source and the dotted key.
    pub(crate) fn from_figment(error: figment::Error, file: &str) -> ConfigError {
        let file = file.to_string();
        let path = error.path.join(".");
        let key_with = |name: &str| {
            if path.is_empty() {
                name.to_string()
            } else if error.path.last().map(String::as_str) == Some(name) {
                path.clone()
            } else {
                format!("{path}.{name}")
            }
        };
        match &error.kind {
            Kind::UnknownField(name, _) => ConfigError::UnknownKey {
                file,
                key: key_with(name),
            },
            Kind::InvalidType(actual, expected) => ConfigError::WrongType {
                file,
                found: describe_found(&path, actual),
                key: path,
                expected: describe_expected(expected),
            },
            Kind::InvalidValue(actual, expected) => ConfigError::BadValue {
                file,
                message: format!(
                    "expected {}, found {}",
                    describe_expected(expected),
                    describe_found(&path, actual)
                ),
                key: path,
            },
            Kind::UnknownVariant(name, allowed) => ConfigError::BadValue {
                file,
                key: path,
                message: format!(
                    "unknown value '{name}'; expected one of: {}",
                    allowed.join(", ")
                ),
            },
            Kind::MissingField(name) => ConfigError::BadValue {
                file,
                key: key_with(name),
                message: "is missing".to_string(),
            },
            _ if path.is_empty() => ConfigError::Other {
                file,
                message: error.kind.to_string(),
            },
            _ => ConfigError::BadValue {
                file,
                key: path,
                message: error.kind.to_string(),
            },
        }
    }
}

/// Turns serde's "expected" text (`u32`, `a string`, `struct WorkerConfig`) into words.
fn describe_expected(expected: &str) -> String {
    match expected {
        "u8" => "an integer from 0 to 255".to_string(),
        "u16" => "an integer from 0 to 65535".to_string(),
        "u32" => "an integer from 0 to 4294967295".to_string(),
        "u64" | "u128" | "usize" => "a non-negative integer".to_string(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a boolean" | "bool" => "a boolean (true or false)".to_string(),
        "a sequence" => "an array".to_string(),
        other if other.starts_with("struct ") || other == "a map" => "a table".to_string(),
        other => other.to_string(),
    }
}

/// Keys whose values are secrets: an error shows only the kind of a bad value.
const SECRET_KEYS: &[&str] = &["database.url", "web.auth.bootstrap_key", "client.api_key"];

/// Describes a bad value found at `key`, without the value itself for a secret.
fn describe_found(key: &str, actual: &Actual) -> String {
    if !SECRET_KEYS.contains(&key) {
        return describe_actual(actual);
    }
    let kind = match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        _ => "another kind of value",
    };
    kind.to_string()
}

/// Describes what was found, in the same words as [`describe_expected`].
fn describe_actual(actual: &Actual) -> String {
    match actual {
        Actual::Bool(v) => format!("a boolean ({v})"),
        Actual::Unsigned(v) => format!("an integer ({v})"),
        Actual::Signed(v) => format!("an integer ({v})"),
        Actual::Float(v) => format!("a float ({v})"),
        Actual::Char(v) => format!("a string ({v:?})"),
        Actual::Str(v) => format!("a string ({v:?})"),
        Actual::Seq => "an array".to_string(),
        Actual::Map => "a table".to_string(),
        other => other.to_string(),
    }
}
