//! `tasker bench` and `tasker bench wasm`: the arguments; the benchmarks are
//! in tasker-bench (`engine/bench`).

use std::path::PathBuf;

use clap::Args;
use tasker_bench::Target;
use tasker_config::TaskerConfig;

/// Where the benchmarks run, for `--help`.
const DATABASE_HELP: &str = "\
Database: by default the benchmark creates a scratch database on the configured \
server ([database] url / DATABASE_URL, else the local default server), named \
tasker_bench_<pid>_<random>, migrates it, runs there and drops it afterwards \
(also after an error or Ctrl-C). The configured database itself is only used to \
connect: nothing in it is read or changed. With --database-url the benchmark runs \
in that database instead (migrating it), and only if it holds no tasks, no \
messages in the queues the benchmark uses and no component named bench-noop: \
otherwise it refuses, naming the database. Nothing there is truncated or purged, \
and what the benchmark wrote stays there. With --allow-finished-tasks as well, \
tasks already finished there (complete, error, cancelled, resolved_manually) are \
accepted and left alone: to measure a database at scale \
(scripts/bench-flat-cost.sh); unfinished tasks are still refused.";

#[derive(Args)]
#[command(after_long_help = DATABASE_HELP)]
pub struct BenchArgs {
    /// Sequential linear 4-step tasks.
    #[arg(long, default_value_t = 200)]
    linear: usize,
    /// Diamond tasks for the throughput run.
    #[arg(long, default_value_t = 2000)]
    diamonds: usize,
    /// Worker/orchestrator batch size (also the floor's batch size).
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Database connections in the pool (at least 4). On two cores more
    /// connections only add contention: 10 beat 32 by 10-30% in throughput.
    #[arg(long, default_value_t = 10)]
    connections: u32,
    /// Messages of the raw PGMQ floor's send->read->delete run.
    #[arg(long, default_value_t = 8000)]
    floor_messages: usize,
    /// Run `tasker server` and `tasker worker` as processes of their own (this
    /// binary), with this process as the HTTP client, as users deploy them;
    /// the workflows are the examples' demo/linear and demo/diamond.
    #[arg(long)]
    processes: bool,
    /// Run in this database, not in a scratch one: it must hold no tasks
    /// (see below). Also for `bench wasm`.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// With --database-url: accept a database that already holds finished
    /// tasks (to measure at scale); unfinished ones are still refused.
    #[arg(long, global = true, requires = "database_url")]
    allow_finished_tasks: bool,
    #[command(subcommand)]
    what: Option<BenchWhat>,
}

/// Benchmarks other than the default workflow run.
#[derive(clap::Subcommand)]
pub enum BenchWhat {
    /// WASM handler dispatch and loading costs next to plain wasmtime.
    #[command(after_long_help = DATABASE_HELP)]
    Wasm(WasmBenchArgs),
}

#[derive(Args)]
pub struct WasmBenchArgs {
    /// The no-op guest (default: $CARGO_TARGET_DIR or target, /wasm-examples/noop_rust.wasm).
    #[arg(long)]
    component: Option<PathBuf>,
    /// Calls per dispatch measurement.
    #[arg(long, default_value_t = 20_000)]
    iterations: usize,
    /// Repetitions of the first-use and disk-cache measurements.
    #[arg(long, default_value_t = 10)]
    loads: usize,
}

pub async fn run(args: BenchArgs, config: &TaskerConfig) -> anyhow::Result<()> {
    let target = match args.database_url {
        Some(url) if args.allow_finished_tasks => Target::Filled(url),
        Some(url) => Target::Url(url),
        None => Target::Scratch,
    };
    match args.what {
        Some(BenchWhat::Wasm(w)) => {
            let options = tasker_bench::wasm::Options {
                component: w.component,
                iterations: w.iterations,
                loads: w.loads,
                ..Default::default()
            };
            tasker_bench::wasm::run(&options, config, &target).await
        }
        None => {
            let options = tasker_bench::workflow::Options {
                linear: args.linear,
                diamonds: args.diamonds,
                batch: args.batch,
                connections: args.connections,
                floor_messages: args.floor_messages,
                ..Default::default()
            };
            if args.processes {
                let tasker = std::env::current_exe()?;
                return tasker_bench::processes::run(&options, config, &target, tasker)
                    .await
                    .map(drop);
            }
            tasker_bench::workflow::run(&options, config, &target)
                .await
                .map(drop)
        }
    }
}
