//! Dispatch overhead per step of the C ABI's handler backends against an
//! in-process Rust handler (no database). Run in release:
//!
//! ```text
//! cargo run --release -p tasker-bench --example dispatch_bench [STEPS] [ROUNDS]
//! ```

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are meaningful only with --release");
    }
    println!("{steps} no-op steps per case, {rounds} rounds (median / p99 per step)");
    for round in 1..=rounds {
        let figures = tasker_bench::dispatch::run(steps)?;
        let floor = figures.first().map(|f| f.median).unwrap_or_default();
        for f in &figures {
            let added = f.median.as_nanos() as i128 - floor.as_nanos() as i128;
            println!(
                "round {round}  {:<32} median {:>7.2} µs  p99 {:>7.2} µs  added {:>+7.2} µs",
                f.case,
                f.median.as_nanos() as f64 / 1000.0,
                f.p99.as_nanos() as f64 / 1000.0,
                added as f64 / 1000.0
            );
        }
    }
    Ok(())
}
