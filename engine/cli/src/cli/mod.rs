//! Command definitions (clap) and the setup they share: configuration,
//! logging, the database.

mod admin;
mod apikey;
mod bench;
mod component;
mod demo;
mod dlq;
mod limit;
mod pause;
mod remote;
mod retention;
mod schedule;
mod serve;
mod signal;
mod step_logs;
mod task_batch;
mod task_watch;
mod templates_queues;
mod workers;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tasker_config::{LoadOptions, TaskerConfig};
use tasker_store::db::{Database, DbSettings};

/// tasker: a polyglot workflow orchestrator on PostgreSQL and PGMQ.
#[derive(Parser)]
#[command(name = "tasker", version)]
pub struct Cli {
    /// Configuration environment (default: TASKER_ENV, else development).
    #[arg(long, global = true)]
    env: Option<String>,
    /// Configuration directory (default: TASKER_CONFIG_DIR, else ./config/tasker, else built in).
    #[arg(long, global = true)]
    config_dir: Option<PathBuf>,
    /// Base URL of the admin API (overrides client.url / TASKER_CLIENT__URL).
    #[arg(long, global = true, value_name = "URL")]
    api: Option<String>,
    /// API key for the admin API (overrides client.api_key / TASKER_CLIENT__API_KEY).
    /// Visible to other users in `ps`: prefer TASKER_CLIENT__API_KEY or --api-key-file.
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        conflicts_with = "api_key_file"
    )]
    api_key: Option<String>,
    /// Read the API key from this file (its first line; e.g. a mounted secret).
    #[arg(long, global = true, value_name = "PATH")]
    api_key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install PGMQ and apply the schema (idempotent).
    Migrate,
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(admin::ConfigCmd),
    /// Validate, register and list task templates.
    #[command(subcommand)]
    Template(admin::TemplateCmd),
    /// Create, inspect, cancel and resolve tasks.
    #[command(subcommand)]
    Task(admin::TaskCmd),
    /// Retry, resolve or complete a step by hand.
    #[command(subcommand)]
    Step(admin::StepCmd),
    /// Inspect the queues.
    #[command(subcommand)]
    Queue(templates_queues::QueueCmd),
    /// The dead-letter queue of steps: list, show, retry, resolve, discard.
    #[command(subcommand)]
    Dlq(dlq::DlqCmd),
    /// Fire a template on a cron expression: create, list, show, pause, resume, delete.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCmd),
    /// Send a signal to a task, for the step that waits for it (`wait_for`).
    #[command(subcommand)]
    Signal(signal::SignalCmd),
    /// Remove finished tasks past their namespace's age (`[retention]`): `run [--dry-run]`.
    #[command(subcommand)]
    Retention(retention::RetentionCmd),
    /// Pause a task, a template or a namespace (nothing new is claimed;
    /// running steps finish), or list the pauses in force.
    #[command(subcommand)]
    Pause(pause::PauseCmd),
    /// Resume a paused task, template or namespace where it stopped.
    #[command(subcommand)]
    Resume(pause::Target),
    /// Named rate limits that steps reference (`rate_limit:`): set, list, show, delete.
    #[command(subcommand)]
    Limit(limit::LimitCmd),
    /// Create, list and revoke API keys for the admin API.
    #[command(subcommand)]
    Apikey(apikey::ApiKeyCmd),
    /// Upload, list and delete WASM components (the code of WASM step handlers).
    ///
    /// `tasker handler ...`, the old name of this command, still works.
    #[command(subcommand, alias = "handler")]
    Component(component::ComponentCmd),
    /// Run an orchestrator and the admin API until Ctrl-C / SIGTERM.
    Server,
    /// Run a worker host for some namespaces and pools until Ctrl-C /
    /// SIGTERM; `tasker worker list` shows the worker registry.
    Worker(serve::WorkerArgs),
    /// Run the example workflows end to end in one process, with live progress.
    Demo(demo::DemoArgs),
    /// Measure latency and throughput against the raw PGMQ floor, in a scratch database (use --release).
    Bench(bench::BenchArgs),
}

/// Loads the configuration as the global flags say; the warnings (foreign
/// `TASKER_*` variables) are for the caller to show once logging is set up.
pub(crate) fn load_config(
    cli_env: &Option<String>,
    dir: &Option<PathBuf>,
) -> anyhow::Result<tasker_config::Loaded> {
    let opts = LoadOptions {
        config_dir: dir.clone(),
        env: cli_env.clone(),
        ..LoadOptions::default()
    };
    Ok(TaskerConfig::load_with_warnings(&opts)?)
}

/// Opens the configured (or default) database and migrates it.
pub(crate) async fn open_db(config: &TaskerConfig) -> anyhow::Result<Database> {
    let settings = DbSettings::from_config(config);
    let db = Database::open(&settings).await?;
    tracing::info!(url = %db.display_url, "connected");
    tasker_store::migrate::migrate(&db.pool)
        .await
        .context("migrating the database")?;
    Ok(db)
}

fn init_logging(config: &TaskerConfig, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = if quiet {
        "warn".to_string()
    } else {
        config.telemetry.log_level.clone()
    };
    // PostgreSQL's NOTICEs ("schema pgmq already exists, skipping") are not news.
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},sqlx::postgres::notice=warn,sqlx_core::pool=error"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(log_ansi())
        .with_writer(std::io::stderr);
    let _ = match config.telemetry.log_format {
        tasker_config::LogFormat::Json => builder.json().try_init(),
        tasker_config::LogFormat::Text => builder.try_init(),
    };
}

/// ANSI colours in log lines only when stderr (where they go) is a terminal,
/// and never with `NO_COLOR` set to anything but "" (<https://no-color.org>).
fn log_ansi() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // `config validate` must work even when the configuration is broken.
    if let Command::Config(cmd) = &cli.command {
        return admin::config(cmd, &cli.env, &cli.config_dir);
    }
    let tasker_config::Loaded { config, warnings } = load_config(&cli.env, &cli.config_dir)?;
    let quiet = matches!(
        cli.command,
        Command::Demo(_)
            | Command::Bench(_)
            | Command::Template(_)
            | Command::Task(_)
            | Command::Step(_)
            | Command::Queue(_)
            | Command::Dlq(_)
            | Command::Schedule(_)
            | Command::Signal(_)
            | Command::Retention(_)
            | Command::Pause(_)
            | Command::Resume(_)
            | Command::Limit(_)
            | Command::Apikey(_)
            | Command::Component(_)
            | Command::Worker(serve::WorkerArgs { cmd: Some(_), .. })
    );
    init_logging(&config, quiet);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let role = match &cli.command {
        Command::Server => "tasker-server",
        Command::Worker(_) => "tasker-worker",
        _ => "tasker-cli",
    };
    tasker_trace::start_export(&config.telemetry, role)?;
    let target = remote::Target {
        url: cli.api.clone(),
        api_key: cli.api_key.clone(),
        api_key_file: cli.api_key_file.clone(),
    };
    match cli.command {
        Command::Config(_) => Ok(()),
        Command::Migrate => {
            let db = open_db(&config).await?;
            println!("database {} is migrated", db.display_url);
            db.close().await;
            Ok(())
        }
        Command::Template(admin::TemplateCmd::Validate { paths }) => {
            admin::template_validate(&paths)
        }
        Command::Task(admin::TaskCmd::Resolve { id, reason }) => {
            admin::task_resolve(id, reason, &config).await
        }
        Command::Template(cmd) => {
            let c = remote::client(&config, &target)?;
            match cmd {
                admin::TemplateCmd::Apply { paths, json } => {
                    templates_queues::template_apply(&c, &paths, json).await
                }
                admin::TemplateCmd::List { json } => {
                    templates_queues::template_list(&c, json).await
                }
                admin::TemplateCmd::Validate { .. } => unreachable!("handled locally above"),
            }
        }
        Command::Task(cmd) => {
            let c = remote::client(&config, &target)?;
            use admin::TaskCmd as T;
            match cmd {
                T::Create {
                    namespace,
                    name,
                    version,
                    context,
                    context_file,
                    idempotency_key,
                    priority,
                    run_at,
                    delay,
                    json,
                } => {
                    let args = remote::CreateArgs {
                        namespace,
                        name,
                        version,
                        context,
                        context_file,
                        idempotency_key,
                        priority,
                        run_at,
                        delay_seconds: delay,
                        json,
                    };
                    remote::task_create(&c, args).await
                }
                T::CreateBatch { file, json } => {
                    task_batch::task_create_batch(&c, &file, json).await
                }
                T::Get { id, json } => remote::task_get(&c, id, json).await,
                T::List {
                    namespace,
                    template,
                    state,
                    limit,
                    cursor,
                    all,
                    json,
                } => {
                    let args = remote::ListArgs {
                        namespace,
                        template,
                        state,
                        limit,
                        cursor,
                        all,
                        json,
                    };
                    remote::task_list(&c, args).await
                }
                T::Cancel { id, reason, json } => remote::task_cancel(&c, id, reason, json).await,
                T::Watch { id, json } => task_watch::task_watch(&c, id, json).await,
                T::Resolve { .. } => unreachable!("handled locally above"),
            }
        }
        Command::Dlq(cmd) => dlq::run(&remote::client(&config, &target)?, cmd).await,
        Command::Schedule(cmd) => schedule::run(&remote::client(&config, &target)?, cmd).await,
        Command::Signal(cmd) => signal::run(&remote::client(&config, &target)?, cmd).await,
        Command::Retention(cmd) => retention::run(&remote::client(&config, &target)?, cmd).await,
        Command::Pause(cmd) => pause::pause(&remote::client(&config, &target)?, cmd).await,
        Command::Resume(t) => pause::resume(&remote::client(&config, &target)?, t).await,
        Command::Limit(cmd) => limit::run(&remote::client(&config, &target)?, cmd).await,
        Command::Step(cmd) => {
            let c = remote::client(&config, &target)?;
            use admin::StepCmd as S;
            use remote::StepAction as A;
            match cmd {
                S::Retry {
                    task,
                    step,
                    reason,
                    json,
                } => remote::step(&c, task, &step, A::Retry, reason, json).await,
                S::Resolve {
                    task,
                    step,
                    reason,
                    json,
                } => remote::step(&c, task, &step, A::Resolve, reason, json).await,
                S::Complete {
                    task,
                    step,
                    result,
                    reason,
                    json,
                } => {
                    let result = serde_json::from_str(&result)
                        .map_err(|e| anyhow::anyhow!("--result is not valid JSON: {e}"))?;
                    remote::step(&c, task, &step, A::Complete(result), reason, json).await
                }
                S::Logs {
                    task,
                    step,
                    attempt,
                    json,
                } => step_logs::run(&c, task, &step, attempt, json).await,
            }
        }
        Command::Queue(cmd) => {
            let c = remote::client(&config, &target)?;
            templates_queues::queue(&c, cmd).await
        }
        Command::Apikey(cmd) => apikey::run(cmd, &config).await,
        Command::Component(cmd) => {
            let c = remote::client(&config, &target)?;
            component::run(&c, cmd).await
        }
        Command::Server => serve::server(&config).await,
        Command::Worker(serve::WorkerArgs {
            cmd: Some(serve::WorkerCmd::List { all, json }),
            ..
        }) => workers::worker_list(&remote::client(&config, &target)?, all, json).await,
        Command::Worker(args) => serve::worker(args, &config).await,
        Command::Demo(args) => demo::run(args, &config).await,
        Command::Bench(args) => bench::run(args, &config).await,
    }
}
