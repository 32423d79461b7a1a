//! `TASKER_*` variables that are not configuration keys: a warning by default,
//! an error in strict mode and in `check_variables` (`tasker config validate`).

use std::path::{Path, PathBuf};

use tasker_config::{check_variables, ConfigError, ConfigWarning, LoadOptions, TaskerConfig};

fn repo_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/tasker")
}

fn options(vars: &[(&str, &str)], strict: bool) -> LoadOptions {
    LoadOptions {
        config_dir: Some(repo_config_dir()),
        env: Some("test".to_string()),
        use_env_vars: true,
        vars: Some(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        strict,
    }
}

fn foreign(name: &str) -> ConfigWarning {
    ConfigWarning::ForeignVariable {
        name: name.to_string(),
    }
}

#[test]
fn a_foreign_variable_is_a_warning_and_the_rest_still_applies() {
    let loaded = TaskerConfig::load_with_warnings(&options(
        &[
            ("TASKER_BIN", "/usr/local/bin/tasker"),
            ("TASKER_UNRELATED", "1"),
            ("TASKER_NOSUCH__KEY", "x"),
            ("TASKER_WORKER__CONCURRENCY", "7"),
        ],
        false,
    ))
    .unwrap();
    assert_eq!(loaded.config.worker.concurrency, 7);
    assert_eq!(
        loaded.warnings,
        [
            foreign("TASKER_BIN"),
            foreign("TASKER_UNRELATED"),
            foreign("TASKER_NOSUCH__KEY")
        ]
    );
    let text = loaded.warnings[0].to_string();
    assert!(text.contains("TASKER_BIN"), "{text}");
    assert!(
        !text.contains("/usr/local/bin"),
        "a value is never shown: {text}"
    );
    // `load` logs them and returns the same configuration.
    let config = TaskerConfig::load(&options(&[("TASKER_UNRELATED", "1")], false)).unwrap();
    assert_eq!(config, TaskerConfig::load(&options(&[], false)).unwrap());
}

#[test]
fn tooling_variables_are_neither_keys_nor_warnings() {
    let vars: Vec<(&str, &str)> = tasker_config::NON_KEY_VARS
        .iter()
        .filter(|name| !matches!(**name, "TASKER_ENV" | "TASKER_CONFIG_DIR"))
        .map(|name| (*name, "0"))
        .collect();
    let loaded = TaskerConfig::load_with_warnings(&options(&vars, true)).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(check_variables(&options(&vars, false)).is_empty());
}

#[test]
fn strict_mode_refuses_a_foreign_variable_naming_it() {
    for opts in [
        options(&[("TASKER_UNRELATED", "1")], true),
        options(
            &[("TASKER_UNRELATED", "1"), ("TASKER_STRICT_CONFIG", "1")],
            false,
        ),
    ] {
        let err = TaskerConfig::load_with_warnings(&opts).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownVariable { name } if name == "TASKER_UNRELATED"),
            "{err:?}"
        );
        assert!(err.to_string().contains("TASKER_UNRELATED"), "{err}");
    }
    let err =
        TaskerConfig::load_with_warnings(&options(&[("TASKER_STRICT_CONFIG", "perhaps")], false))
            .unwrap_err();
    assert!(err.to_string().contains("TASKER_STRICT_CONFIG"), "{err}");
}

#[test]
fn a_typo_inside_a_known_section_stays_an_error() {
    let err =
        TaskerConfig::load_with_warnings(&options(&[("TASKER_WORKER__CONCURENCY", "8")], false))
            .unwrap_err();
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
}

#[test]
fn check_variables_names_every_problem() {
    let problems = check_variables(&options(
        &[
            ("TASKER_UNRELATED", "1"),
            ("TASKER_BIN", "x"),
            ("TASKER_WORKER__CONCURRENCY", "lots"),
            ("TASKER_WORKER__BATCH_SIZE", "5"),
            ("TASKER_ENV", "test"),
            ("DATABASE_URL", "postgres://u:secret@h/db"),
            ("PATH", "/bin"),
        ],
        false,
    ));
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{text:?}");
    assert!(text[0].contains("TASKER_UNRELATED"), "{text:?}");
    assert!(text[1].contains("TASKER_BIN"), "{text:?}");
    assert!(text[2].contains("TASKER_WORKER__CONCURRENCY"), "{text:?}");
    assert!(text.iter().all(|t| !t.contains("secret")), "{text:?}");
    assert!(check_variables(&options(&[("TASKER_WORKER__CONCURRENCY", "3")], false)).is_empty());
}

#[test]
fn readme_lists_every_non_key_variable() {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/README.md"),
    )
    .unwrap();
    for name in tasker_config::NON_KEY_VARS {
        assert!(
            readme.contains(&format!("`{name}`")),
            "config/README.md lacks `{name}`"
        );
    }
}
