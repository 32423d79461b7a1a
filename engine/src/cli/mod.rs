//! Command definitions (clap) and the setup they share: configuration,
//! logging, the database.

mod admin;
mod apikey;
mod bench;
mod demo;
mod serve;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tasker_engine::config::{LoadOptions, TaskerConfig};
use tasker_engine::db::{Database, DbSettings};

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
    /// Create, list and revoke API keys for the admin API.
    #[command(subcommand)]
    Apikey(apikey::ApiKeyCmd),
    /// Run an orchestrator and the admin API until Ctrl-C / SIGTERM.
    Server,
    /// Run a worker host for some namespaces until Ctrl-C / SIGTERM.
    Worker(serve::WorkerArgs),
    /// Run the example workflows end to end in one process, with live progress.
    Demo(demo::DemoArgs),
    /// Measure latency and throughput against the raw PGMQ floor (use --release).
    Bench(bench::BenchArgs),
}

/// Loads the configuration as the global flags say.
pub(crate) fn load_config(
    cli_env: &Option<String>,
    dir: &Option<PathBuf>,
) -> anyhow::Result<TaskerConfig> {
    let opts = LoadOptions {
        config_dir: dir.clone(),
        env: cli_env.clone(),
        ..LoadOptions::default()
    };
    Ok(TaskerConfig::load(&opts)?)
}

/// Opens the configured (or default) database and migrates it.
pub(crate) async fn open_db(config: &TaskerConfig) -> anyhow::Result<Database> {
    let d = &config.database;
    let settings = DbSettings {
        url: d.url.as_ref().map(|s| s.expose().to_string()),
        database_name: d.database_name.clone(),
        data_dir: d.resolved_data_dir(),
        private_port: d.private_cluster_port,
        local_port: 5432,
        max_connections: d.max_connections,
        min_connections: d.min_connections,
        acquire_timeout: Duration::from_millis(d.acquire_timeout_ms),
    };
    let db = Database::open(&settings).await?;
    tracing::info!(url = %db.display_url, "connected");
    tasker_engine::migrate::migrate(&db.pool)
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
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx::postgres::notice=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.telemetry.log_format {
        tasker_engine::config::LogFormat::Json => builder.json().try_init(),
        tasker_engine::config::LogFormat::Text => builder.try_init(),
    };
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // `config validate` must work even when the configuration is broken.
    if let Command::Config(cmd) = &cli.command {
        return admin::config(cmd, &cli.env, &cli.config_dir);
    }
    let config = load_config(&cli.env, &cli.config_dir)?;
    let quiet = matches!(
        cli.command,
        Command::Demo(_)
            | Command::Bench(_)
            | Command::Template(_)
            | Command::Task(_)
            | Command::Step(_)
            | Command::Apikey(_)
    );
    init_logging(&config, quiet);
    match cli.command {
        Command::Config(_) => Ok(()),
        Command::Migrate => {
            let db = open_db(&config).await?;
            println!("database {} is migrated", db.display_url);
            db.close().await;
            Ok(())
        }
        Command::Template(cmd) => admin::template(cmd, &config).await,
        Command::Task(cmd) => admin::task(cmd, &config).await,
        Command::Step(cmd) => admin::step(cmd, &config).await,
        Command::Apikey(cmd) => apikey::run(cmd, &config).await,
        Command::Server => serve::server(&config).await,
        Command::Worker(args) => serve::worker(args, &config).await,
        Command::Demo(args) => demo::run(args, &config).await,
        Command::Bench(args) => bench::run(args, &config).await,
    }
}
