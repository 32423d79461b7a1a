//! The repository's `config/tasker` files, compiled into the binary so that an
//! installed `tasker` works without a configuration directory.

/// One component file: its component name (file stem) and its text.
pub(crate) type ComponentFile = (&'static str, &'static str);

macro_rules! component {
    ($dir:literal, $name:literal) => {
        (
            $name,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../config/tasker/",
                $dir,
                "/",
                $name,
                ".toml"
            )),
        )
    };
}

/// `config/tasker/base/*.toml`.
pub(crate) const BASE: &[ComponentFile] = &[
    component!("base", "channels"),
    component!("base", "circuit_breakers"),
    component!("base", "client"),
    component!("base", "database"),
    component!("base", "orchestration"),
    component!("base", "queues"),
    component!("base", "retention"),
    component!("base", "telemetry"),
    component!("base", "templates"),
    component!("base", "wasm"),
    component!("base", "web"),
    component!("base", "worker"),
];

/// `config/tasker/environments/<name>/*.toml`, by environment name.
pub(crate) const ENVIRONMENTS: &[(&str, &[ComponentFile])] = &[
    (
        "development",
        &[
            component!("environments/development", "channels"),
            component!("environments/development", "database"),
            component!("environments/development", "telemetry"),
        ],
    ),
    (
        "production",
        &[
            component!("environments/production", "channels"),
            component!("environments/production", "database"),
            component!("environments/production", "telemetry"),
            component!("environments/production", "web"),
            component!("environments/production", "worker"),
        ],
    ),
    (
        "test",
        &[
            component!("environments/test", "channels"),
            component!("environments/test", "circuit_breakers"),
            component!("environments/test", "database"),
            component!("environments/test", "orchestration"),
            component!("environments/test", "queues"),
            component!("environments/test", "telemetry"),
            component!("environments/test", "web"),
            component!("environments/test", "worker"),
        ],
    ),
];
