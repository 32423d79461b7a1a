//! Tests of loading, layering, error messages, validation and redaction.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

fn repo_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/tasker")
}

fn load_repo(env: &str) -> Result<TaskerConfig, ConfigError> {
    TaskerConfig::load(&LoadOptions::hermetic(Some(repo_config_dir()), env))
}

fn load_with_vars(
    dir: &Path,
    env: &str,
    vars: &[(&str, &str)],
) -> Result<TaskerConfig, ConfigError> {
    TaskerConfig::load(&LoadOptions {
        config_dir: Some(dir.to_path_buf()),
        env: Some(env.to_string()),
        use_env_vars: true,
        vars: Some(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        strict: false,
    })
}

/// A private copy of the repository's `config/tasker`, removed on drop.
struct TempConfig {
    root: PathBuf,
}

impl TempConfig {
    fn copy_of_repo() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "tasker-config-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        copy_dir(&repo_config_dir(), &root);
        TempConfig { root }
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(&self, env: &str) -> Result<TaskerConfig, ConfigError> {
        TaskerConfig::load(&LoadOptions::hermetic(Some(self.root.clone()), env))
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn all_channel_sizes(c: &ChannelConfig) -> [usize; 7] {
    [
        c.command_buffer,
        c.task_requests,
        c.step_enqueue,
        c.step_results,
        c.finalization,
        c.worker_dispatch,
        c.worker_results,
    ]
}

// ---- the real files ----

#[test]
fn every_real_environment_loads_and_validates() {
    let outcomes = validate_environments(&repo_config_dir());
    let names: Vec<&str> = outcomes.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["development", "production", "test"]);
    for (name, outcome) in outcomes {
        if let Err(e) = outcome {
            panic!("environment {name} failed: {e}");
        }
    }
}

#[test]
fn base_files_equal_the_rust_defaults() {
    let from_files = TaskerConfig::from_toml_str("").unwrap();
    assert_eq!(from_files, TaskerConfig::default());
    TaskerConfig::default().validate().unwrap();
}

#[test]
fn test_environment_overrides_apply() {
    let test = load_repo("test").unwrap();
    let base = TaskerConfig::default();
    assert_ne!(test.channels, base.channels);
    for size in all_channel_sizes(&test.channels) {
        assert!((10..=100).contains(&size), "test channel size {size}");
    }
    assert_eq!(test.database.database_name, "tasker_test");
    assert!(test.web.auth.enabled);
    assert!(test.queues.poll_interval_ms < base.queues.poll_interval_ms);
    // Keys the test environment does not mention keep the base value.
    assert_eq!(test.channels.saturation_warn_percent, 80);
    assert_eq!(test.worker.namespaces, base.worker.namespaces);
}

#[test]
fn production_and_development_differ_as_documented() {
    let prod = load_repo("production").unwrap();
    let dev = load_repo("development").unwrap();
    assert_eq!(prod.telemetry.log_format, LogFormat::Json);
    assert_eq!(dev.telemetry.log_format, LogFormat::Text);
    for (p, d) in all_channel_sizes(&prod.channels)
        .into_iter()
        .zip(all_channel_sizes(&dev.channels))
    {
        assert!(
            p > d,
            "production buffers ({p}) larger than development ({d})"
        );
    }
}

#[test]
fn embedded_files_match_the_directory_and_load_without_one() {
    let options = LoadOptions::hermetic(None, "test");
    // The tests run in engine/, where ./config/tasker does not exist.
    assert_eq!(options.resolve().source, ConfigSource::Embedded);
    for env in ["development", "production", "test"] {
        let embedded = TaskerConfig::load(&LoadOptions::hermetic(None, env)).unwrap();
        assert_eq!(embedded, load_repo(env).unwrap(), "environment {env}");
    }
}

#[test]
fn every_directory_file_is_embedded() {
    let dir = repo_config_dir();
    let stems = |path: PathBuf| {
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let base: Vec<&str> = embedded::BASE.iter().map(|(n, _)| *n).collect();
    assert_eq!(stems(dir.join("base")), base);
    for (env, files) in embedded::ENVIRONMENTS {
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(stems(dir.join("environments").join(env)), names, "{env}");
    }
    assert_eq!(
        sources::environment_names(&dir),
        sources::embedded_environment_names()
    );
}

#[test]
fn every_file_starts_with_a_comment() {
    let dir = repo_config_dir();
    let mut dirs = vec![dir.join("base")];
    dirs.extend(
        sources::environment_names(&dir)
            .iter()
            .map(|e| dir.join("environments").join(e)),
    );
    for d in dirs {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("# "),
                "{} has no leading comment",
                path.display()
            );
        }
    }
}

// ---- environment variables ----

#[test]
fn env_var_overrides_a_key() {
    let dir = repo_config_dir();
    let config = load_with_vars(&dir, "test", &[("TASKER_WORKER__CONCURRENCY", "7")]).unwrap();
    assert_eq!(config.worker.concurrency, 7);
    assert_eq!(
        config.channels.command_buffer, 100,
        "the test env still applies"
    );
}

#[test]
fn env_vars_select_directory_and_environment() {
    let dir = repo_config_dir();
    let dir_text = dir.display().to_string();
    let options = LoadOptions {
        config_dir: None,
        env: None,
        use_env_vars: true,
        vars: Some(vec![
            ("TASKER_CONFIG_DIR".to_string(), dir_text),
            ("TASKER_ENV".to_string(), "production".to_string()),
        ]),
        strict: false,
    };
    assert_eq!(options.resolve().source, ConfigSource::Dir(dir));
    let config = TaskerConfig::load(&options).unwrap();
    assert_eq!(config.telemetry.log_format, LogFormat::Json);
}

#[test]
fn env_vars_are_ignored_when_disabled() {
    let options = LoadOptions {
        config_dir: Some(repo_config_dir()),
        env: Some("test".to_string()),
        use_env_vars: false,
        vars: Some(vec![(
            "TASKER_WORKER__CONCURRENCY".to_string(),
            "99".to_string(),
        )]),
        strict: false,
    };
    assert_eq!(TaskerConfig::load(&options).unwrap().worker.concurrency, 4);
}

#[test]
fn database_url_alias_and_string_values() {
    let dir = repo_config_dir();
    let config = load_with_vars(
        &dir,
        "test",
        &[
            ("DATABASE_URL", "postgres://a@h/one"),
            (
                "TASKER_WEB__AUTH__BOOTSTRAP_KEY",
                "123456789012345678901234",
            ),
            ("TASKER_WORKER__NAMESPACES", "[billing, shipping]"),
            ("TASKER_ORCHESTRATION__MODE", "polling"),
        ],
    )
    .unwrap();
    assert_eq!(config.database.url.unwrap().expose(), "postgres://a@h/one");
    assert_eq!(
        config.web.auth.bootstrap_key.unwrap().expose(),
        "123456789012345678901234"
    );
    assert_eq!(config.worker.namespaces, ["billing", "shipping"]);
    assert_eq!(config.orchestration.mode, Mode::Polling);

    let both = load_with_vars(
        &dir,
        "test",
        &[
            ("TASKER_DATABASE__URL", "postgres://b@h/two"),
            ("DATABASE_URL", "postgres://a@h/one"),
        ],
    )
    .unwrap();
    assert_eq!(both.database.url.unwrap().expose(), "postgres://b@h/two");
}

#[test]
fn unknown_key_in_env_var_names_the_variable() {
    let err = load_with_vars(
        &repo_config_dir(),
        "test",
        &[("TASKER_WORKER__CONCURENCY", "8")],
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("TASKER_WORKER__CONCURENCY"), "{text}");
    assert!(text.contains("'worker.concurency'"), "{text}");
}

#[test]
fn wrong_type_in_env_var_names_the_variable() {
    let err = load_with_vars(
        &repo_config_dir(),
        "test",
        &[("TASKER_WORKER__CONCURRENCY", "lots")],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::WrongType { .. }), "{err:?}");
    assert!(text.contains("TASKER_WORKER__CONCURRENCY"), "{text}");
    assert!(text.contains("'worker.concurrency'"), "{text}");
}

// ---- errors from files ----

#[test]
fn unknown_key_in_environment_file_names_file_and_key() {
    let tmp = TempConfig::copy_of_repo();
    let path = tmp.write(
        "environments/test/worker.toml",
        "# worker\n[worker]\nconcurency = 4\n",
    );
    let err = tmp.load("test").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("unknown key 'worker.concurency'"), "{text}");
}

#[test]
fn unknown_nested_key_names_the_full_path() {
    let tmp = TempConfig::copy_of_repo();
    let path = tmp.write(
        "environments/production/web.toml",
        "# web\n[web.auth]\nenabeld = true\n",
    );
    let err = tmp.load("production").unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("'web.auth.enabeld'"), "{text}");
}

#[test]
fn wrong_type_names_file_and_key() {
    let tmp = TempConfig::copy_of_repo();
    let path = tmp.write(
        "environments/test/worker.toml",
        "# worker\n[worker]\nconcurrency = \"eight\"\n",
    );
    let err = tmp.load("test").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::WrongType { .. }), "{err:?}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("'worker.concurrency' has the wrong type"),
        "{text}"
    );
    assert!(
        text.contains("integer") && text.contains("string"),
        "{text}"
    );
}

#[test]
fn errors_in_base_files_name_the_base_file() {
    let tmp = TempConfig::copy_of_repo();
    let path = tmp.write(
        "base/queues.toml",
        "# queues\n[queues]\nread_batch_size = true\n",
    );
    let text = tmp.load("development").unwrap_err().to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("'queues.read_batch_size'"), "{text}");
}

#[test]
fn bad_enum_value_names_file_and_key() {
    let tmp = TempConfig::copy_of_repo();
    let path = tmp.write(
        "environments/test/orchestration.toml",
        "# o\n[orchestration]\nmode = \"fast\"\n",
    );
    let err = tmp.load("test").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::BadValue { .. }), "{err:?}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("'orchestration.mode'") && text.contains("hybrid"),
        "{text}"
    );
}

#[test]
fn out_of_range_number_names_file_and_key() {
    let tmp = TempConfig::copy_of_repo();
    let path = tmp.write(
        "environments/test/channels.toml",
        "# c\n[channels]\nsaturation_warn_percent = 300\n",
    );
    let text = tmp.load("test").unwrap_err().to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("'channels.saturation_warn_percent'"),
        "{text}"
    );
}

#[test]
fn table_in_the_wrong_file_is_rejected() {
    let tmp = TempConfig::copy_of_repo();
    let path = tmp.write(
        "environments/test/worker.toml",
        "# worker\n[channels]\ncommand_buffer = 5\n",
    );
    let err = tmp.load("test").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::MisplacedTable { .. }), "{err:?}");
    assert!(
        text.contains(&path.display().to_string()) && text.contains("[worker]"),
        "{text}"
    );
}

#[test]
fn invalid_toml_names_the_file() {
    let tmp = TempConfig::copy_of_repo();
    let path = tmp.write("environments/test/web.toml", "# web\n[web\nbind = 1\n");
    let err = tmp.load("test").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn unknown_environment_lists_the_available_ones() {
    let tmp = TempConfig::copy_of_repo();
    std::fs::create_dir_all(tmp.root.join("environments/staging")).unwrap();
    let err = tmp.load("prod").unwrap_err();
    let text = err.to_string();
    match &err {
        ConfigError::UnknownEnvironment { name, available } => {
            assert_eq!(name, "prod");
            assert_eq!(available, &["development", "production", "staging", "test"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(text.contains("'prod'") && text.contains("development, production, staging, test"));
    // An empty environment folder is a valid environment: base values only.
    assert_eq!(tmp.load("staging").unwrap(), TaskerConfig::default());
}

#[test]
fn unknown_embedded_environment_is_an_error() {
    let err = TaskerConfig::load(&LoadOptions::hermetic(None, "staging")).unwrap_err();
    assert!(
        err.to_string().contains("development, production, test"),
        "{err}"
    );
}

#[test]
fn zero_channel_size_names_the_key() {
    let tmp = TempConfig::copy_of_repo();
    tmp.write(
        "environments/test/channels.toml",
        "# c\n[channels]\nstep_results = 0\n",
    );
    let err = tmp.load("test").unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("'channels.step_results'"), "{err}");
}

#[test]
fn validate_environments_reports_each_environment() {
    let tmp = TempConfig::copy_of_repo();
    tmp.write(
        "environments/production/worker.toml",
        "# w\n[worker]\nbatch_size = 5000\n",
    );
    let outcomes = validate_environments(&tmp.root);
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(failed, ["production"]);

    let missing = validate_environments(&tmp.root.join("nowhere"));
    assert!(matches!(
        missing.as_slice(),
        [(_, Err(ConfigError::Io { .. }))]
    ));
}

// ---- inline TOML and validation ----

#[test]
fn from_toml_str_layers_on_the_base() {
    let config = TaskerConfig::from_toml_str(
        "[worker]\nnamespaces = [\"payments\"]\nconcurrency = 2\n\n[database]\nurl = \"postgres://u:p@h/db\"\n",
    )
    .unwrap();
    assert_eq!(config.worker.namespaces, ["payments"]);
    assert_eq!(config.worker.concurrency, 2);
    assert_eq!(config.worker.batch_size, 10);
    assert_eq!(config.database.url.unwrap().expose(), "postgres://u:p@h/db");

    let err = TaskerConfig::from_toml_str("[worker]\nconcurency = 2\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("<inline TOML>") && text.contains("'worker.concurency'"),
        "{text}"
    );
    let err = TaskerConfig::from_toml_str("[nonsense]\nx = 1\n").unwrap_err();
    assert!(err.to_string().contains("unknown key 'nonsense'"), "{err}");
}

#[test]
fn validation_names_the_key() {
    let cases = [
        (
            "[database]\nmin_connections = 30\nmax_connections = 10\n",
            "database.min_connections",
        ),
        (
            "[database]\ndatabase_name = \"drop table\"\n",
            "database.database_name",
        ),
        ("[queues]\nread_batch_size = 0\n", "queues.read_batch_size"),
        (
            "[orchestration]\nresult_batch_size = 1001\n",
            "orchestration.result_batch_size",
        ),
        ("[worker]\nconcurrency = 0\n", "worker.concurrency"),
        (
            "[worker]\nnamespaces = [\"Bad-Name\"]\n",
            "worker.namespaces",
        ),
        ("[worker]\nnamespaces = []\n", "worker.namespaces"),
        (
            "[worker]\nheartbeat_interval_seconds = 30\n",
            "worker.heartbeat_interval_seconds",
        ),
        (
            "[channels]\nworker_dispatch = 0\n",
            "channels.worker_dispatch",
        ),
        (
            "[channels]\nsaturation_warn_percent = 0\n",
            "channels.saturation_warn_percent",
        ),
        (
            "[circuit_breakers]\nfailure_threshold = 0\n",
            "circuit_breakers.failure_threshold",
        ),
        ("[web]\nbind = \"localhost\"\n", "web.bind"),
        (
            "[web.auth]\nbootstrap_key = \"\"\n",
            "web.auth.bootstrap_key",
        ),
        (
            "[telemetry]\nlog_level = \"info,[[\"\n",
            "telemetry.log_level",
        ),
        ("[templates]\nmax_depth = 129\n", "templates.max_depth"),
        ("[templates]\nmax_depth = 0\n", "templates.max_depth"),
        ("[templates]\nmax_bytes = 0\n", "templates.max_bytes"),
        ("[templates]\nmax_steps = 0\n", "templates.max_steps"),
        (
            "[templates]\nparse_timeout_ms = 0\n",
            "templates.parse_timeout_ms",
        ),
        (
            "[templates]\nmax_concurrent_parses = 0\n",
            "templates.max_concurrent_parses",
        ),
    ];
    for (text, key) in cases {
        match TaskerConfig::from_toml_str(text) {
            Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key, "for {text:?}"),
            other => panic!("for {text:?}: expected Invalid {key}, got {other:?}"),
        }
    }
}

// ---- secrets ----

#[test]
fn redacted_toml_hides_secrets_and_keeps_the_rest() {
    let config = TaskerConfig::from_toml_str(
        "[database]\nurl = \"postgres://u:secret@h/db\"\n[web.auth]\nbootstrap_key = \"topsecret-topsecret-topsecret\"\n",
    )
    .unwrap();
    let shown = config.to_redacted_toml();
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("postgres://u:***@h/db"), "{shown}");
    assert!(shown.contains("bootstrap_key = \"***\""), "{shown}");
    let with_key = TaskerConfig::from_toml_str("[client]\napi_key = \"tk_topsecret\"\n").unwrap();
    let shown_key = with_key.to_redacted_toml();
    assert!(
        !shown_key.contains("topsecret") && shown_key.contains("api_key = \"***\""),
        "{shown_key}"
    );
    // The shown text is itself a loadable configuration, but for a
    // bootstrap key's placeholder, which is refused as a key.
    let err = TaskerConfig::from_toml_str(&shown).unwrap_err();
    assert!(err.to_string().contains("web.auth.bootstrap_key"), "{err}");
    let reparsed = TaskerConfig::from_toml_str(&shown_key).unwrap();
    assert_eq!(reparsed.channels, config.channels);
    // Without secrets, the keys are simply absent.
    let plain = TaskerConfig::default().to_redacted_toml();
    assert!(
        !plain.contains("postgres")
            && !plain.contains("bootstrap_key")
            && !plain.contains("api_key"),
        "{plain}"
    );
}

#[test]
fn debug_output_has_no_secret() {
    let config = TaskerConfig::from_toml_str(
        "[database]\nurl = \"postgres://u:secret@h/db\"\n[web.auth]\nbootstrap_key = \"topsecret-topsecret-topsecret\"\n",
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("secret"), "{debug}");
    assert!(debug.contains("***"));
    let pretty = format!("{config:#?}");
    assert!(!pretty.contains("secret"));
}

#[test]
fn errors_and_options_do_not_show_secret_values() {
    let err = TaskerConfig::from_toml_str("[web.auth]\nbootstrap_key = 987654321\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("'web.auth.bootstrap_key'"), "{text}");
    assert!(!text.contains("987654321"), "{text}");

    let options = LoadOptions {
        vars: Some(vec![(
            "DATABASE_URL".to_string(),
            "postgres://u:secret@h/db".to_string(),
        )]),
        ..LoadOptions::default()
    };
    let debug = format!("{options:?}");
    assert!(
        debug.contains("DATABASE_URL") && !debug.contains("secret"),
        "{debug}"
    );
}

#[test]
fn resolved_data_dir_expands_home() {
    let db = DatabaseConfig::default();
    if let Some(home) = std::env::var_os("HOME") {
        assert_eq!(
            db.resolved_data_dir(),
            PathBuf::from(home).join(".local/share/tasker/pgdata")
        );
    }
    let relative = DatabaseConfig {
        data_dir: PathBuf::from(".tasker/pgdata"),
        ..DatabaseConfig::default()
    };
    assert_eq!(
        relative.resolved_data_dir(),
        PathBuf::from(".tasker/pgdata")
    );
}

// ---- documentation ----

fn leaf_keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, inner) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_keys(&path, inner, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn readme_documents_every_key() {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/README.md"),
    )
    .unwrap();
    let mut config = TaskerConfig::default();
    config.database.url = Some(Secret::new("postgres://localhost/tasker"));
    config.web.auth.bootstrap_key = Some(Secret::new("key"));
    let value = toml::Value::try_from(&config).unwrap();
    let mut keys = Vec::new();
    leaf_keys("", &value, &mut keys);
    assert!(keys.len() > 40, "{keys:?}");
    for key in keys {
        assert!(
            readme.contains(&format!("| `{key}` |")),
            "config/README.md lacks `{key}`"
        );
    }
}
