//! Which `TASKER_*` environment variables are configuration keys, which are
//! tasker's own switches, and which belong to someone else.
//!
//! A variable is a key when its name is `TASKER_<SECTION>__<KEY>` with a
//! section the configuration has; an unknown key *inside* a known section
//! (`TASKER_WORKER__CONCURENCY`) is a typo of a key and stays an error, as in
//! a file. Any other `TASKER_` name (`TASKER_BIN`, `TASKER_UNRELATED`,
//! `TASKER_FOO__BAR`) is *foreign*: ignored with a [`ConfigWarning`], or an
//! error in strict mode ([`ENV_VAR_STRICT`], `tasker config validate`). The
//! names in [`NON_KEY_VARS`] are read by tasker or its tooling and are
//! neither keys nor foreign.

use super::sources::{ENV_PREFIX, ENV_SEPARATOR, ENV_VAR_CONFIG_DIR, ENV_VAR_ENV};
use super::ConfigError;
use super::TaskerConfig;
use figment::value::Value;

/// `TASKER_STRICT_CONFIG=1` (or `true`): a foreign `TASKER_*` variable is an
/// error instead of a warning. Not a key.
pub const ENV_VAR_STRICT: &str = "TASKER_STRICT_CONFIG";

/// `TASKER_*` variables that are not configuration keys and are never warned
/// about: the loader's own switches, and the names the repository's build and
/// test tooling reads (documented in `config/README.md`).
pub const NON_KEY_VARS: &[&str] = &[
    ENV_VAR_ENV,
    ENV_VAR_CONFIG_DIR,
    ENV_VAR_STRICT,
    // abi/build.rs: regenerate bindings-c/include/tasker.h.
    "TASKER_WRITE_HEADER",
    // The Ruby gem's from-source build: cargo features of the extension.
    "TASKER_CARGO_FEATURES",
    // Test suites: the PostgreSQL server or database to test against.
    "TASKER_TEST_PG",
    "TASKER_TEST_PG_URL",
    "TASKER_TEST_DATABASE_URL",
    // bindings-python/bench: skip rebuilding the package.
    "TASKER_BENCH_NO_BUILD",
];

/// Something about the configuration worth telling, that does not stop it
/// from loading. Shown with `Display` (one line naming the variable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigWarning {
    /// A `TASKER_*` variable that names no configuration key; it was ignored.
    ForeignVariable {
        /// The variable's name (its value is never shown: it may be a secret).
        name: String,
    },
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigWarning::ForeignVariable { name } => write!(
                f,
                "environment variable {name} is not a configuration key (those are \
                 TASKER_<SECTION>__<KEY>); ignored ({ENV_VAR_STRICT}=1 makes it an error)"
            ),
        }
    }
}

/// What a variable's name is to the loader.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VarKind {
    /// Not `TASKER_*`, or one of [`NON_KEY_VARS`]: not looked at as a key.
    Skip,
    /// `TASKER_*` naming no section: ignored (a warning), or an error if strict.
    Foreign,
    /// `TASKER_<SECTION>__<KEY>...`: the key's parts, lowercase.
    Key(Vec<String>),
}

/// Classifies a variable by its name.
pub(crate) fn classify(name: &str) -> VarKind {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return VarKind::Skip;
    };
    if NON_KEY_VARS.contains(&name) {
        return VarKind::Skip;
    }
    let parts: Vec<String> = rest
        .split(ENV_SEPARATOR)
        .map(|part| part.to_ascii_lowercase())
        .collect();
    // Every key lives in a section: a name without `__` is never a key.
    match parts.first() {
        Some(section) if parts.len() >= 2 && is_section(section) => VarKind::Key(parts),
        _ => VarKind::Foreign,
    }
}

/// Whether `name` is a top-level table of [`TaskerConfig`].
fn is_section(name: &str) -> bool {
    match Value::serialize(TaskerConfig::default()) {
        Ok(Value::Dict(_, sections)) => sections.contains_key(name),
        // Cannot happen (the defaults serialize to a table); treating the name
        // as a section keeps the old, strict behaviour.
        _ => true,
    }
}

/// Whether strict mode is asked for by [`ENV_VAR_STRICT`] among `vars`: `1`,
/// `true`, `yes`, `on` turn it on; unset, empty, `0`, `false`, `no`, `off`
/// leave it off; anything else is an error naming the variable.
pub(crate) fn strict_from(vars: &[(String, String)]) -> Result<bool, ConfigError> {
    let Some((_, value)) = vars.iter().find(|(name, _)| name == ENV_VAR_STRICT) else {
        return Ok(false);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::Other {
            file: format!("environment variable {ENV_VAR_STRICT}"),
            message: format!("expected 1 or 0 (true or false), found {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified() {
        assert_eq!(classify("PATH"), VarKind::Skip);
        assert_eq!(classify("TASKER_ENV"), VarKind::Skip);
        assert_eq!(classify("TASKER_CONFIG_DIR"), VarKind::Skip);
        assert_eq!(classify("TASKER_STRICT_CONFIG"), VarKind::Skip);
        assert_eq!(classify("TASKER_WRITE_HEADER"), VarKind::Skip);
        assert_eq!(classify("TASKER_BIN"), VarKind::Foreign);
        assert_eq!(classify("TASKER_UNRELATED"), VarKind::Foreign);
        assert_eq!(classify("TASKER_WORKER"), VarKind::Foreign);
        assert_eq!(classify("TASKER_NOSUCH__KEY"), VarKind::Foreign);
        assert_eq!(classify("TASKER_"), VarKind::Foreign);
        assert_eq!(
            classify("TASKER_WORKER__CONCURENCY"),
            VarKind::Key(vec!["worker".into(), "concurency".into()])
        );
        assert_eq!(
            classify("TASKER_WEB__AUTH__ENABLED"),
            VarKind::Key(vec!["web".into(), "auth".into(), "enabled".into()])
        );
    }

    #[test]
    fn every_section_is_known() {
        for section in [
            "database",
            "queues",
            "orchestration",
            "worker",
            "channels",
            "circuit_breakers",
            "web",
            "client",
            "telemetry",
            "wasm",
            "templates",
            "retention",
        ] {
            assert!(is_section(section), "{section}");
        }
        assert!(!is_section("bin"));
    }

    #[test]
    fn strict_switch_values() {
        let vars = |v: &str| vec![(ENV_VAR_STRICT.to_string(), v.to_string())];
        assert!(!strict_from(&[]).unwrap());
        for on in ["1", "true", "TRUE", "yes", "on"] {
            assert!(strict_from(&vars(on)).unwrap(), "{on}");
        }
        for off in ["", "0", "false", "no", "off"] {
            assert!(!strict_from(&vars(off)).unwrap(), "{off}");
        }
        let err = strict_from(&vars("maybe")).unwrap_err().to_string();
        assert!(err.contains("TASKER_STRICT_CONFIG"), "{err}");
    }

    #[test]
    fn a_warning_names_the_variable_but_not_its_value() {
        let warning = ConfigWarning::ForeignVariable {
            name: "TASKER_BIN".into(),
        };
        let text = warning.to_string();
        assert!(text.contains("TASKER_BIN"), "{text}");
        assert!(text.contains("TASKER_STRICT_CONFIG=1"), "{text}");
    }
}
