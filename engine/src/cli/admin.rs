//! `tasker config|template|task ...`: admin commands over the library.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use comfy_table::Table;
use tasker_engine::config::{validate_environments, TaskerConfig};
use tasker_engine::store;
use tasker_engine::template::{load_paths, Template};

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Check every environment (or only --env), naming the file and key of any problem.
    Validate,
    /// Print the effective configuration with secrets redacted.
    Show,
}

#[derive(Subcommand)]
pub enum TemplateCmd {
    /// Validate template files or directories without touching the database.
    Validate { paths: Vec<PathBuf> },
    /// Validate and register templates.
    Apply { paths: Vec<PathBuf> },
    /// List registered templates.
    List,
}

#[derive(Subcommand)]
pub enum TaskCmd {
    /// Create a task from a registered template.
    Create {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
        /// The task input as JSON.
        #[arg(long, default_value = "{}")]
        context: String,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long, default_value_t = 0)]
        priority: i32,
    },
    /// Show a task with its steps.
    Get {
        id: uuid::Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a task: unfinished steps are cancelled, a running handler is told.
    Cancel {
        id: uuid::Uuid,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resolve a task manually (it ends as resolved_manually).
    Resolve {
        id: uuid::Uuid,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum StepCmd {
    /// Retry a failed step (attempts reset; a blocked task resumes).
    Retry { task: uuid::Uuid, step: String },
    /// Mark a step resolved manually; its children may run.
    Resolve {
        task: uuid::Uuid,
        step: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Complete a step manually with a given JSON result.
    Complete {
        task: uuid::Uuid,
        step: String,
        #[arg(long)]
        result: String,
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
            if failed > 0 {
                bail!("{failed} environment(s) invalid in {}", dir.display());
            }
            Ok(())
        }
        ConfigCmd::Show => {
            let config = super::load_config(env, dir)?;
            print!("{}", config.to_redacted_toml());
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

pub async fn template(cmd: TemplateCmd, config: &TaskerConfig) -> anyhow::Result<()> {
    match cmd {
        TemplateCmd::Validate { paths } => {
            for t in load_paths(&paths)? {
                print_levels(&t);
            }
            Ok(())
        }
        TemplateCmd::Apply { paths } => {
            let templates = load_paths(&paths)?;
            let db = super::open_db(config).await?;
            for t in &templates {
                let r = store::template::register(&db.pool, t).await?;
                println!(
                    "{}  {}",
                    if r.created {
                        "registered"
                    } else {
                        "unchanged "
                    },
                    t.key()
                );
            }
            db.close().await;
            Ok(())
        }
        TemplateCmd::List => {
            let db = super::open_db(config).await?;
            let mut table = Table::new();
            table.set_header(["namespace", "name", "version", "registered"]);
            for r in store::template::list(&db.pool).await? {
                table.add_row([r.namespace, r.name, r.version, r.created_at.to_rfc3339()]);
            }
            println!("{table}");
            db.close().await;
            Ok(())
        }
    }
}

pub async fn task(cmd: TaskCmd, config: &TaskerConfig) -> anyhow::Result<()> {
    let db = super::open_db(config).await?;
    match cmd {
        TaskCmd::Cancel { id, reason } => {
            let s = store::operator::cancel_task(&db.pool, id, operator(&reason)).await?;
            println!("task {id} {s}");
        }
        TaskCmd::Resolve { id, reason } => {
            let s = store::operator::resolve_task(&db.pool, id, operator(&reason)).await?;
            println!("task {id} {s}");
        }
        TaskCmd::Create {
            namespace,
            name,
            version,
            context,
            idempotency_key,
            priority,
        } => {
            let context = serde_json::from_str(&context)
                .map_err(|e| anyhow::anyhow!("--context is not valid JSON: {e}"))?;
            let req = store::task::NewTask {
                namespace,
                name,
                version,
                context,
                priority,
                idempotency_key,
            };
            let cache = store::template::TemplateCache::default();
            let created = store::task::create(&db.pool, &cache, &req, "cli").await?;
            println!(
                "{}{}",
                created.task_id,
                if created.created {
                    ""
                } else {
                    " (existing task for this idempotency key)"
                }
            );
        }
        TaskCmd::Get { id, json } => {
            let d = store::task::detail(&db.pool, id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                println!(
                    "task {}  {}/{}/{}  {}",
                    d.task.id,
                    d.task.namespace,
                    d.task.template_name,
                    d.task.template_version,
                    d.task.state
                );
                let mut table = Table::new();
                table.set_header(["step", "handler", "state", "attempts", "result / error"]);
                for s in d.steps {
                    let detail = s
                        .result
                        .or(s.last_error)
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    table.add_row([
                        s.name,
                        s.handler_name,
                        s.state,
                        format!("{}/{}", s.attempts, s.max_attempts),
                        detail,
                    ]);
                }
                println!("{table}");
            }
        }
    }
    db.close().await;
    Ok(())
}

fn operator(reason: &Option<String>) -> store::operator::Actor<'_> {
    store::operator::Actor {
        processor_id: "cli",
        reason: reason.as_deref(),
    }
}

/// Finds a step of `task` by name or id.
async fn step_id(pool: &sqlx::PgPool, task: uuid::Uuid, step: &str) -> anyhow::Result<uuid::Uuid> {
    let d = store::task::detail(pool, task).await?;
    d.steps
        .iter()
        .find(|s| s.name == step || s.id.to_string() == step)
        .map(|s| s.id)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "task {task} has no step '{step}' (steps: {})",
                d.steps
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

pub async fn step(cmd: StepCmd, config: &TaskerConfig) -> anyhow::Result<()> {
    let db = super::open_db(config).await?;
    let pool = &db.pool;
    let state = match &cmd {
        StepCmd::Retry { task, step } => {
            let id = step_id(pool, *task, step).await?;
            store::operator::retry_step(pool, *task, id, operator(&None)).await?
        }
        StepCmd::Resolve { task, step, reason } => {
            let id = step_id(pool, *task, step).await?;
            store::operator::finish_step(pool, *task, id, None, operator(reason)).await?
        }
        StepCmd::Complete { task, step, result } => {
            let result: serde_json::Value = serde_json::from_str(result)
                .map_err(|e| anyhow::anyhow!("--result is not valid JSON: {e}"))?;
            let id = step_id(pool, *task, step).await?;
            store::operator::finish_step(pool, *task, id, Some(result), operator(&None)).await?
        }
    };
    println!("task is now {state}");
    db.close().await;
    Ok(())
}
