//! `tasker`: the command-line entry point (orchestrator, worker host, demo,
//! benchmark, and admin commands over the library crates).
//!
//! Invariants: the binary holds argument parsing and presentation only (the
//! work is in the library crates); every error reaches the user as one line
//! naming what failed, with exit code 1.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// `tasker task list | head` closes stdout early: leave quietly, as a
/// program killed by SIGPIPE would (exit code 141), instead of a panic and a
/// backtrace. (Rust ignores SIGPIPE so that sockets report it as an error;
/// restoring it would let a closed client connection kill `tasker server`.)
fn leave_quietly_on_broken_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    leave_quietly_on_broken_stdout();
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
    let outcome = rt.block_on(cli::run(args));
    // Spans still queued go out before the process ends.
    if let Some(exporting) = tasker_trace::export::running() {
        exporting.flush();
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
