//! `tasker task create-batch`: tasks from a JSON-lines file, created over
//! `POST /v1/tasks/batch`, up to 1,000 a request.

use std::io::BufRead;
use std::path::Path;

use anyhow::{anyhow, Context};
use tasker_api_types::CreateTaskRequest;
use tasker_client::Client;

use super::remote::{explain, print_json};

/// Tasks a request (the API's limit).
const PER_REQUEST: usize = tasker_store::task::MAX_BATCH;

/// Reads one task a line (`POST /v1/tasks`'s body; blank lines skipped) from
/// `path` (`-`: standard input), checks every line first, then creates them
/// in requests of up to [`PER_REQUEST`]. Each request is all or nothing; a
/// refused one stops the run, and the tasks of earlier requests stay
/// created (printed first). Prints one task id a line, or JSON.
pub async fn task_create_batch(c: &Client, path: &Path, json: bool) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut tasks = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let task: CreateTaskRequest = serde_json::from_str(&line)
            .map_err(|e| anyhow!("{} line {}: not a task: {e}", path.display(), n + 1))?;
        tasks.push(task);
    }
    if tasks.is_empty() {
        anyhow::bail!("{}: no task in it (one JSON object a line)", path.display());
    }
    let mut all = Vec::with_capacity(tasks.len());
    for (k, chunk) in tasks.chunks(PER_REQUEST).enumerate() {
        let created = c.create_tasks(chunk).await.map_err(|e| {
            let done = k * PER_REQUEST;
            explain(c, e).context(format!(
                "creating tasks {}..{} (the {done} before them were created)",
                done + 1,
                done + chunk.len()
            ))
        });
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                print_created(&all, json)?;
                return Err(e);
            }
        };
        all.extend(created);
    }
    print_created(&all, json)
}

fn print_created(created: &[tasker_api_types::CreatedTask], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&created);
    }
    for t in created {
        let note = if t.created {
            ""
        } else {
            " (existing task for this idempotency key)"
        };
        println!("{}{note}", t.task_id);
    }
    Ok(())
}
