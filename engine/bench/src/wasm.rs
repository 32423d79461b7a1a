//! `tasker bench wasm`: the WASM backend's costs next to plain wasmtime.
//! Build with `--release`. Runs in the database [`crate::database`] provides,
//! where it uploads one component, `bench-noop` (removed again at the end).
//!
//! - warm dispatch: a fresh instance + one call of a no-op guest whose
//!   component is cached (`WasmHost::call`, on the calling thread), and the
//!   same through `spawn_blocking` from tokio (what the worker does);
//! - the floor ([`RawFloor`]): plain wasmtime on an engine like the host's,
//!   measured before and after (their difference is the machine's noise),
//!   and on a default engine;
//! - first use: look the component up and fetch its bytes from the database,
//!   compile it; and a restarted host loading it from the disk cache;
//! - the per-attempt lookup of the step's component (one query).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tasker_config::TaskerConfig;
use tasker_store::component as hstore;
use tasker_wasm_host::{CallInput, LoadedFrom, WasmHost};
use tasker_worker::handler::wasm::host_config;

use crate::database::{self, BenchDb, Claims, Target};
use crate::raw_floor::RawFloor;
use crate::stats::pct;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The no-op guest; `None`: [`default_component`].
    pub component: Option<PathBuf>,
    /// Calls per dispatch measurement (at least 100).
    pub iterations: usize,
    /// Repetitions of the first-use and disk-cache measurements (at least 1).
    pub loads: usize,
    /// Per-attempt lookups measured.
    pub lookups: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            component: None,
            iterations: 20_000,
            loads: 10,
            lookups: 1000,
        }
    }
}

/// The component name the benchmark uploads.
pub const NAME: &str = "bench-noop";
const VERSION: &str = "1.0.0";

/// `$CARGO_TARGET_DIR` (else `target`) `/wasm-examples/noop_rust.wasm`,
/// built by `scripts/build-wasm-examples.sh rust`.
pub fn default_component() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("wasm-examples/noop_rust.wasm")
}

/// What the benchmark writes besides tasks (it creates none).
pub fn claims() -> Claims {
    Claims {
        queues: Vec::new(),
        components: vec![NAME.to_string()],
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "p50 {:8.1} µs   p99 {:8.1} µs   min {:8.1}   max {:9.1}   (n={})",
        pct(&v, 0.5),
        pct(&v, 0.99),
        v[0],
        v[v.len() - 1],
        v.len()
    )
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    pct(&v, 0.5)
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
        ..Default::default()
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

/// Runs the benchmark in `target` (see [`crate::database`]) with `config`'s
/// database server and `[wasm]` settings, printing as it goes.
pub async fn run(options: &Options, config: &TaskerConfig, target: &Target) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are meaningful only with --release");
    }
    let path = options.component.clone().unwrap_or_else(default_component);
    let bytes = std::fs::read(&path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (build it with scripts/build-wasm-examples.sh rust)",
            path.display()
        )
    })?;
    let (options, bench_config) = (options.clone(), config.clone());
    database::run_in(config, target, &claims(), move |db| {
        measure(options, bench_config, db, path, bytes)
    })
    .await
}

async fn measure(
    options: Options,
    config: TaskerConfig,
    db: BenchDb,
    path: PathBuf,
    bytes: Vec<u8>,
) -> anyhow::Result<()> {
    let pool = db.pool.clone();
    println!(
        "tasker bench wasm on {} ({}; {} cores), guest {} ({} bytes)",
        db.display_url,
        if db.scratch {
            "a scratch database, dropped afterwards"
        } else {
            "the database named with --database-url"
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        path.display(),
        bytes.len()
    );
    let n = options.iterations.max(100);
    // Floors: plain wasmtime with an engine like the host's (the real
    // floor), and with a default engine (what a naive embedding gets).
    let mut hc = host_config(&config.wasm);
    hc.cache_dir = None;
    let host = Arc::new(WasmHost::new(hc.clone())?);
    let raw = RawFloor::pooling(&hc, &bytes)?;
    let naive = RawFloor::new(&bytes)?;
    floor(&raw, n / 10)?; // warm up
    floor(&naive, n / 10)?;
    let floor_before = floor(&raw, n)?;
    let naive_floor = floor(&naive, n)?;

    // Store the component as an upload would. `claims` made sure no component
    // of this name was there: whatever is there now is this run's.
    let sha = tasker_wasm_host::sha256_hex(&bytes);
    let stored = hstore::put(&pool, NAME, VERSION, &sha, "0.1.0", &bytes).await?;
    anyhow::ensure!(
        matches!(stored, hstore::Stored::Created(_)),
        "component {NAME} {VERSION} appeared in {} while the benchmark ran; left alone",
        db.display_url
    );
    let measured = measure_stored(&options, &config, &pool, &host, &raw, &sha, &bytes, n).await;
    hstore::delete(&pool, NAME, VERSION).await?;
    let Measured {
        first_use,
        from_disk,
        direct,
        blocking,
        lookup,
        floor_after,
    } = measured?;

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
    let (fb, fa) = (median(&floor_before), median(&floor_after));
    println!(
        "  overhead over the floor: {:+.1} µs at p50 ({:.2}x); floor noise before/after: {:.1}%",
        median(&direct) - (fb + fa) / 2.0,
        median(&direct) / ((fb + fa) / 2.0),
        ((fa - fb) / fb * 100.0).abs()
    );
    println!("component loading:");
    println!("  first use (db + compile)      {}", stats(first_use));
    println!("  restart (disk cache)          {}", stats(from_disk));
    println!("per-attempt component lookup (one query):");
    println!("  resolve                       {}", stats(lookup));
    Ok(())
}

struct Measured {
    first_use: Vec<f64>,
    from_disk: Vec<f64>,
    direct: Vec<f64>,
    blocking: Vec<f64>,
    lookup: Vec<f64>,
    floor_after: Vec<f64>,
}

#[allow(clippy::too_many_arguments)]
async fn measure_stored(
    options: &Options,
    config: &TaskerConfig,
    pool: &sqlx::PgPool,
    host: &Arc<WasmHost>,
    raw: &RawFloor,
    sha: &str,
    bytes: &[u8],
    n: usize,
) -> anyhow::Result<Measured> {
    // First use: lookup + bytes from the database + compile, each with a new
    // host and an empty cache; then a restarted host loading from disk.
    let mut first_use = Vec::new();
    let mut from_disk = Vec::new();
    for _ in 0..options.loads.max(1) {
        let dir = scratch_dir();
        let loaded = load_twice(config, pool, &dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        let (first, disk) = loaded?;
        first_use.push(first);
        from_disk.push(disk);
    }

    // Warm dispatch with the configured host.
    let (prepared, _) = host.load(sha, bytes)?;
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
    let mut lookup = Vec::with_capacity(options.lookups.max(1));
    for _ in 0..options.lookups.max(1) {
        let t = Instant::now();
        hstore::resolve(pool, NAME, None).await?;
        lookup.push(micros(t.elapsed()));
    }
    let floor_after = floor(raw, n)?;
    Ok(Measured {
        first_use,
        from_disk,
        direct,
        blocking,
        lookup,
        floor_after,
    })
}

/// One first use (lookup, fetch, compile with an empty cache in `dir`) and
/// one restart (a new host loading from that cache), in µs.
async fn load_twice(
    config: &TaskerConfig,
    pool: &sqlx::PgPool,
    dir: &Path,
) -> anyhow::Result<(f64, f64)> {
    let mut hc = host_config(&config.wasm);
    hc.cache_dir = Some(dir.to_path_buf());
    let host = WasmHost::new(hc.clone())?;
    let t = Instant::now();
    let (name, version, sha) = hstore::resolve(pool, NAME, None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("component vanished"))?;
    let stored = hstore::bytes(pool, &name, &version, &sha)
        .await?
        .ok_or_else(|| anyhow::anyhow!("component vanished"))?;
    let (_, from) = host.load(&sha, &stored)?;
    let first = micros(t.elapsed());
    anyhow::ensure!(from == LoadedFrom::Compiled, "expected a compile");
    drop(host);
    let host = WasmHost::new(hc)?;
    let t = Instant::now();
    let (_, from) = host
        .cached(&sha)
        .ok_or_else(|| anyhow::anyhow!("not in the disk cache"))?;
    let disk = micros(t.elapsed());
    anyhow::ensure!(from == LoadedFrom::Disk, "expected the disk cache");
    Ok((first, disk))
}
