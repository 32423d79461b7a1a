//! `tasker`: the command-line entry point (orchestrator, worker host, demo,
//! benchmark, and admin commands over the library crates).
//!
//! Invariants: the binary holds argument parsing and presentation only (the
//! work is in the library crates); every error reaches the user as one line
//! naming what failed, with exit code 1.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
