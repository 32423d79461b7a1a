//! `tasker bench wasm`: the WASM backend's costs next to plain wasmtime.
//! Build with `--release`. Uses database `tasker_bench` unless a URL is
//! configured; writes only the `bench-noop` component row.
//!
//! - warm dispatch: a fresh instance + one call of a no-op guest whose
//!   component is cached (`WasmHost::call`, on the calling thread), and the
//!   same through `spawn_blocking` from tokio (what the worker does);
//! - the floor: plain wasmtime (default engine, no limits, no capture),
//!   measured before and after (their difference is the machine's noise);
//! - first use: look the component up and fetch its bytes from the database,
//!   compile it; and a restarted host loading it from the disk cache;
//! - the per-attempt lookup of the step's component (one query).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tasker_config::TaskerConfig;
use tasker_store::component as hstore;
use tasker_wasm_host::{CallInput, LoadedFrom, RawFloor, WasmHost};
use tasker_worker::handler::wasm::host_config;

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

const NAME: &str = "bench-noop";
const VERSION: &str = "1.0.0";

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "p50 {:8.1} µs   p99 {:8.1} µs   min {:8.1}   max {:9.1}   (n={})",
        p(0.5),
        p(0.99),
        v[0],
        v[v.len() - 1],
        v.len()
    )
}

fn input() -> CallInput {
    CallInput {
        task_id: "0190a1b2-0000-7000-8000-000000000000".into(),
        step_id: "0190a1b2-0000-7000-8000-000000000001".into(),
        namespace: "bench".into(),
        template_name: "bench".into(),
        step_name: "noop".into(),
        attempt: 1,
        max_attempts: 1,
        input: "{}".into(),
        parent_results: "{}".into(),
        config: "{}".into(),
    }
}

fn floor(raw: &RawFloor, n: usize) -> anyhow::Result<Vec<f64>> {
    let input = input();
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        raw.call(&input).map_err(|e| anyhow::anyhow!(e))?;
        v.push(micros(t.elapsed()));
    }
    Ok(v)
}

fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("tasker-bench-wasm-{}", uuid::Uuid::now_v7()))
}

pub async fn run(args: WasmBenchArgs, config: &TaskerConfig) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are meaningful only with --release");
    }
    let path = args.component.clone().unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"));
        target.join("wasm-examples/noop_rust.wasm")
    });
    let bytes = std::fs::read(&path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (build it with scripts/build-wasm-examples.sh rust)",
            path.display()
        )
    })?;
    let mut config = config.clone();
    if config.database.url.is_none() {
        config.database.database_name = "tasker_bench".into();
    }
    let db = super::open_db(&config).await?;
    let pool = db.pool.clone();
    println!(
        "tasker bench wasm on {} ({} cores), guest {} ({} bytes)",
        db.display_url,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        path.display(),
        bytes.len()
    );
    let n = args.iterations.max(100);
    // Floors: plain wasmtime with the same pooling engine as the host (the
    // real floor), and with a default engine (what a naive embedding gets).
    let mut hc = host_config(&config.wasm);
    hc.cache_dir = None;
    let host = Arc::new(WasmHost::new(hc)?);
    let raw = RawFloor::with_host_engine(&host, &bytes)?;
    let naive = RawFloor::new(&bytes)?;
    floor(&raw, n / 10)?; // warm up
    floor(&naive, n / 10)?;
    let floor_before = floor(&raw, n)?;
    let naive_floor = floor(&naive, n)?;

    // Store the component as an upload would.
    hstore::delete(&pool, NAME, VERSION).await?;
    let sha = tasker_wasm_host::sha256_hex(&bytes);
    hstore::put(&pool, NAME, VERSION, &sha, "0.1.0", &bytes).await?;

    // First use: lookup + bytes from the database + compile, each with a new
    // host and an empty cache; then a restarted host loading from disk.
    let mut first_use = Vec::new();
    let mut from_disk = Vec::new();
    for _ in 0..args.loads.max(1) {
        let mut hc = host_config(&config.wasm);
        let dir = scratch_dir();
        hc.cache_dir = Some(dir.clone());
        let host = WasmHost::new(hc.clone())?;
        let t = Instant::now();
        let (name, version, sha) = hstore::resolve(&pool, NAME, None)
            .await?
            .ok_or_else(|| anyhow::anyhow!("component vanished"))?;
        let stored = hstore::bytes(&pool, &name, &version, &sha)
            .await?
            .ok_or_else(|| anyhow::anyhow!("component vanished"))?;
        let (_, from) = host.load(&sha, &stored)?;
        first_use.push(micros(t.elapsed()));
        anyhow::ensure!(from == LoadedFrom::Compiled, "expected a compile");
        drop(host);
        let host = WasmHost::new(hc)?;
        let t = Instant::now();
        let (_, from) = host
            .cached(&sha)
            .ok_or_else(|| anyhow::anyhow!("not in the disk cache"))?;
        from_disk.push(micros(t.elapsed()));
        anyhow::ensure!(from == LoadedFrom::Disk, "expected the disk cache");
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Warm dispatch with the configured host.
    let (prepared, _) = host.load(&sha, &bytes)?;
    let input = input();
    let never = Arc::new(AtomicBool::new(false));
    let timeout = Duration::from_secs(30);
    for _ in 0..n / 10 {
        host.call(&prepared, &input, timeout, never.clone())?;
    }
    let mut direct = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        host.call(&prepared, &input, timeout, never.clone())?;
        direct.push(micros(t.elapsed()));
    }
    let mut blocking = Vec::with_capacity(n);
    for _ in 0..n {
        let (h, p, i, c) = (host.clone(), prepared.clone(), input.clone(), never.clone());
        let t = Instant::now();
        tokio::task::spawn_blocking(move || h.call(&p, &i, timeout, c)).await??;
        blocking.push(micros(t.elapsed()));
    }
    // The per-attempt lookup (the worker runs it for every step).
    let mut lookup = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        hstore::resolve(&pool, NAME, None).await?;
        lookup.push(micros(t.elapsed()));
    }
    let floor_after = floor(&raw, n)?;
    hstore::delete(&pool, NAME, VERSION).await?;

    let med = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!("warm dispatch, fresh instance + call:");
    println!("  WasmHost::call                {}", stats(direct.clone()));
    println!("  spawn_blocking + call         {}", stats(blocking));
    println!(
        "  raw wasmtime floor (before)   {}",
        stats(floor_before.clone())
    );
    println!(
        "  raw wasmtime floor (after)    {}",
        stats(floor_after.clone())
    );
    println!("  raw, default engine           {}", stats(naive_floor));
    let (fb, fa) = (med(&floor_before), med(&floor_after));
    println!(
        "  overhead over the floor: {:+.1} µs at p50 ({:.2}x); floor noise before/after: {:.1}%",
        med(&direct) - (fb + fa) / 2.0,
        med(&direct) / ((fb + fa) / 2.0),
        ((fa - fb) / fb * 100.0).abs()
    );
    println!("component loading:");
    println!("  first use (db + compile)      {}", stats(first_use));
    println!("  restart (disk cache)          {}", stats(from_disk));
    println!("per-attempt component lookup (one query):");
    println!("  resolve                       {}", stats(lookup));
    db.close().await;
    Ok(())
}
