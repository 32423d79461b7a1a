//! `[retention]` (`retention.toml`): removing finished tasks after an age.
//! Kept apart from `sections.rs` only for the size of that file; the same
//! conventions hold (defaults equal `config/tasker/base/retention.toml`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[retention]`: finished tasks (complete, error, cancelled, resolved by
/// hand) older than an age are deleted with their steps and history, in
/// small batches, by every orchestrator's background sweep (when `enabled`)
/// and by `tasker retention run`. See `docs/retention.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Whether orchestrators run the background sweep. Off by default: an
    /// upgrade never starts deleting data by itself.
    pub enabled: bool,
    /// A finished task is removed this long after it finished, in seconds;
    /// 0 keeps finished tasks forever (only `namespaces` listed with an age
    /// are swept).
    pub finished_task_age_seconds: u64,
    /// How often an orchestrator sweeps, in seconds.
    pub interval_seconds: u64,
    /// Tasks deleted per transaction, 1..=1000.
    pub batch_size: u32,
    /// Per-namespace ages in seconds, overriding `finished_task_age_seconds`
    /// (`[retention.namespaces] billing = 7776000`); 0 keeps that namespace's
    /// finished tasks forever.
    pub namespaces: BTreeMap<String, u64>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: false,
            finished_task_age_seconds: 2_592_000,
            interval_seconds: 300,
            batch_size: 500,
            namespaces: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{ConfigError, LoadOptions, TaskerConfig};
    use std::path::Path;

    fn load_with_vars(vars: &[(&str, &str)]) -> Result<TaskerConfig, ConfigError> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/tasker");
        TaskerConfig::load(&LoadOptions {
            config_dir: Some(dir),
            env: Some("test".into()),
            use_env_vars: true,
            vars: Some(
                vars.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            strict: true,
        })
    }

    #[test]
    fn off_by_default_with_thirty_days() {
        let config = TaskerConfig::from_toml_str("").unwrap();
        assert!(!config.retention.enabled);
        assert_eq!(config.retention.finished_task_age_seconds, 30 * 24 * 3600);
        assert!(config.retention.namespaces.is_empty());
    }

    #[test]
    fn namespaces_override_the_age() {
        let config = TaskerConfig::from_toml_str(
            "[retention]\nenabled = true\n[retention.namespaces]\nbilling = 7776000\naudit = 0\n",
        )
        .unwrap();
        assert!(config.retention.enabled);
        assert_eq!(config.retention.namespaces["billing"], 7_776_000);
        assert_eq!(config.retention.namespaces["audit"], 0);
    }

    #[test]
    fn a_namespace_age_from_a_variable() {
        let config = load_with_vars(&[("TASKER_RETENTION__NAMESPACES__BILLING", "86400")]).unwrap();
        assert_eq!(config.retention.namespaces["billing"], 86_400);
        let err = load_with_vars(&[("TASKER_RETENTION__ENABLD", "true")]).unwrap_err();
        assert!(err.to_string().contains("'retention.enabld'"), "{err}");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "[retention]\ninterval_seconds = 0\n",
                "retention.interval_seconds",
            ),
            ("[retention]\nbatch_size = 0\n", "retention.batch_size"),
            ("[retention]\nbatch_size = 1001\n", "retention.batch_size"),
            (
                "[retention.namespaces]\nBilling = 1\n",
                "retention.namespaces.Billing",
            ),
        ];
        for (text, key) in cases {
            match TaskerConfig::from_toml_str(text) {
                Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key, "{text:?}"),
                other => panic!("for {text:?}: expected Invalid {key}, got {other:?}"),
            }
        }
        let err = TaskerConfig::from_toml_str("[retention.namespaces]\nbilling = \"90d\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention.namespaces.billing"), "{err}");
        let err = TaskerConfig::from_toml_str("[retention]\nage = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'retention.age'"), "{err}");
    }
}
