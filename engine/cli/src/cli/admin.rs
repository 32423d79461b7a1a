//! `tasker config|template|task ...`: admin commands over the library.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use tasker_config::{validate_environments, TaskerConfig};
use tasker_model::template::{load_paths, Template};

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Check every environment (or only --env), naming the file and key of any problem.
    Validate,
    /// Print the effective configuration with secrets redacted.
    Show,
}

#[derive(Subcommand)]
pub enum TemplateCmd {
    /// Validate template files or directories locally (no server needed).
    Validate { paths: Vec<PathBuf> },
    /// Validate template files or directories, then register them through the API.
    Apply {
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List registered templates (through the API).
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TaskCmd {
    /// Create a task from a registered template; prints its id.
    Create {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        name: String,
        /// Template version; default the highest registered.
        #[arg(long)]
        version: Option<String>,
        /// The task input as JSON (default `{}`).
        #[arg(long)]
        context: Option<String>,
        /// Read the task input (JSON) from this file.
        #[arg(long, conflicts_with = "context")]
        context_file: Option<PathBuf>,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long, default_value_t = 0)]
        priority: i32,
        /// Start no step before this instant (RFC 3339, e.g.
        /// 2026-12-24T18:00:00Z); at most a year ahead.
        #[arg(long, conflicts_with = "delay")]
        run_at: Option<chrono::DateTime<chrono::Utc>>,
        /// Start no step before this delay from now: 90s, 10m, 1h30m, 2d (a
        /// bare number is seconds); at most a year.
        #[arg(long, value_parser = super::schedule::parse_delay)]
        delay: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Create many tasks from a file of one JSON task a line (as `POST
    /// /v1/tasks` takes it: namespace, name, context, ...), up to 1,000 a
    /// request, each request all or nothing; prints their ids in order.
    CreateBatch {
        /// The JSON-lines file; `-` reads standard input.
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show a task with its steps.
    Get {
        id: uuid::Uuid,
        #[arg(long)]
        json: bool,
    },
    /// List tasks, newest first.
    List {
        #[arg(long)]
        namespace: Option<String>,
        /// Template name.
        #[arg(long)]
        template: Option<String>,
        /// e.g. complete, error, blocked_by_failures, steps_in_process.
        #[arg(long)]
        state: Option<String>,
        /// Page size (1..=500; server default 50).
        #[arg(long)]
        limit: Option<i64>,
        /// Start after this cursor (printed under a full page).
        #[arg(long)]
        cursor: Option<uuid::Uuid>,
        /// Follow the cursor to the last page.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a task: unfinished steps are cancelled, a running handler is told.
    Cancel {
        id: uuid::Uuid,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Follow a task live until it ends (exit code 1 if it ends in error or blocked).
    Watch {
        id: uuid::Uuid,
        /// Print each event as one JSON line instead of the live view.
        #[arg(long)]
        json: bool,
    },
    /// Resolve a task manually (it ends as resolved_manually); works on the database directly.
    Resolve {
        id: uuid::Uuid,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum StepCmd {
    /// Retry a failed step (attempts reset; a blocked task resumes).
    Retry {
        task: uuid::Uuid,
        /// Step name or id.
        step: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Mark a step resolved manually; its children may run.
    Resolve {
        task: uuid::Uuid,
        step: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Complete a step manually with a given JSON result.
    Complete {
        task: uuid::Uuid,
        step: String,
        #[arg(long)]
        result: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show what a step's handler logged, attempt by attempt.
    Logs {
        task: uuid::Uuid,
        /// Step name or id.
        step: String,
        /// Only this attempt (1 for the first).
        #[arg(long)]
        attempt: Option<u32>,
        #[arg(long)]
        json: bool,
    },
}

pub fn config(cmd: &ConfigCmd, env: &Option<String>, dir: &Option<PathBuf>) -> anyhow::Result<()> {
    match cmd {
        ConfigCmd::Validate => {
            let dir = dir
                .clone()
                .or_else(|| std::env::var_os("TASKER_CONFIG_DIR").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("config/tasker"));
            let mut failed = 0;
            // The variables of this process, strictly: a foreign TASKER_* name fails.
            let problems = tasker_config::check_variables(&tasker_config::LoadOptions::default());
            for problem in &problems {
                println!("invalid variables: {problem}");
            }
            if problems.is_empty() {
                println!("ok      variables");
            }
            for (name, result) in validate_environments(&dir) {
                if env.as_ref().is_some_and(|e| e != &name) {
                    continue;
                }
                match result {
                    Ok(_) => println!("ok      {name}"),
                    Err(e) => {
                        failed += 1;
                        println!("invalid {name}: {e}");
                    }
                }
            }
            let mut invalid = Vec::new();
            if !problems.is_empty() {
                invalid.push(format!("{} environment variable(s)", problems.len()));
            }
            if failed > 0 {
                invalid.push(format!("{failed} environment(s) in {}", dir.display()));
            }
            if !invalid.is_empty() {
                bail!("invalid: {}", invalid.join(" and "));
            }
            Ok(())
        }
        ConfigCmd::Show => {
            let loaded = super::load_config(env, dir)?;
            // Logging is not set up for `config`: warnings go straight to stderr.
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", loaded.config.to_redacted_toml());
            Ok(())
        }
    }
}

fn print_levels(t: &Template) {
    let levels: Vec<String> = t.levels().iter().map(|(n, l)| format!("{n}@{l}")).collect();
    println!(
        "ok  {}  {} steps  levels: {}",
        t.key(),
        t.steps.len(),
        levels.join(" ")
    );
}

/// `template validate`: local, no server needed.
pub fn template_validate(paths: &[PathBuf]) -> anyhow::Result<()> {
    for t in load_paths(paths)? {
        print_levels(&t);
    }
    Ok(())
}

/// `task resolve`: on the database directly (the API has no route for it).
pub async fn task_resolve(
    id: uuid::Uuid,
    reason: Option<String>,
    config: &TaskerConfig,
) -> anyhow::Result<()> {
    let db = super::open_db(config).await?;
    let actor = tasker_store::operator::Actor {
        processor_id: "cli",
        reason: reason.as_deref(),
    };
    let (s, changed) = tasker_store::operator::resolve_task(&db.pool, id, actor).await?;
    // Watchers in other processes (the API's event streams) hear it now.
    tasker_notify::Wakeups::new(&db.pool)
        .announce_now(&changed)
        .await;
    println!("task {id} {s}");
    db.close().await;
    Ok(())
}
