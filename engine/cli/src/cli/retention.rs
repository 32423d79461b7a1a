//! `tasker retention run [--dry-run] [--batch N]`: remove finished tasks past
//! their namespace's age now, through the admin API (`docs/retention.md`).

use anyhow::bail;
use clap::Subcommand;
use comfy_table::Table;

use tasker_api_types::{RetentionRun, RetentionRunRequest};
use tasker_client::Client;

use super::remote::{explain, print_json};

#[derive(Subcommand)]
pub enum RetentionCmd {
    /// Remove finished tasks older than their namespace's age (`[retention]`
    /// of the server) now, a batch per transaction, printing progress; works
    /// whether or not the background sweep is enabled.
    Run {
        /// Change nothing: per namespace, its age, how many finished tasks
        /// are past it, and their oldest and newest completion.
        #[arg(long)]
        dry_run: bool,
        /// Tasks per transaction, 1..=1000 (default: the server's retention.batch_size).
        #[arg(long, value_name = "N")]
        batch: Option<u32>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(c: &Client, cmd: RetentionCmd) -> anyhow::Result<()> {
    let RetentionCmd::Run {
        dry_run,
        batch,
        json,
    } = cmd;
    if let Some(n) = batch {
        if !(1..=1000).contains(&n) {
            bail!("--batch must be 1..=1000, got {n}");
        }
    }
    let req = RetentionRunRequest {
        dry_run,
        batch_size: batch,
    };
    if dry_run {
        let plan = c.run_retention(&req).await.map_err(|e| explain(c, e))?;
        return if json {
            print_json(&plan)
        } else {
            show_plan(&plan)
        };
    }
    // Each call runs for at most half the server's request time limit.
    let mut total = RetentionRun {
        dry_run: false,
        namespaces: Vec::new(),
        deleted: 0,
        batches: 0,
        done: false,
    };
    while !total.done {
        let r = c.run_retention(&req).await.map_err(|e| explain(c, e))?;
        total.deleted += r.deleted;
        total.batches += r.batches;
        total.done = r.done || r.deleted == 0;
        if !json && !total.done {
            eprintln!(
                "removed {} finished tasks so far ({} batches)...",
                total.deleted, total.batches
            );
        }
    }
    if json {
        return print_json(&total);
    }
    println!(
        "removed {} finished tasks in {} batches",
        total.deleted, total.batches
    );
    Ok(())
}

fn show_plan(plan: &RetentionRun) -> anyhow::Result<()> {
    let mut table = Table::new();
    table.set_header([
        "namespace",
        "age",
        "tasks",
        "oldest completed",
        "newest completed",
    ]);
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        })
    };
    for n in &plan.namespaces {
        table.add_row([
            n.namespace.clone(),
            age(n.age_seconds),
            n.tasks.to_string(),
            when(n.oldest_completed_at),
            when(n.newest_completed_at),
        ]);
    }
    println!("{table}");
    let total: i64 = plan.namespaces.iter().map(|n| n.tasks).sum();
    println!("{total} finished tasks would be removed (dry run: nothing changed)");
    Ok(())
}

/// An age in the largest whole unit: `30d`, `12h`, `90s`; 0 is `forever`.
fn age(seconds: i64) -> String {
    match seconds {
        0 => "kept forever".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_in_whole_units() {
        assert_eq!(super::age(0), "kept forever");
        assert_eq!(super::age(2_592_000), "30d");
        assert_eq!(super::age(7_200), "2h");
        assert_eq!(super::age(120), "2m");
        assert_eq!(super::age(61), "61s");
    }
}
