//! The host against real guest components built by
//! `scripts/build-wasm-examples.sh` (into `$CARGO_TARGET_DIR/wasm-examples`).
//! The Rust guests are required; run `scripts/build-wasm-examples.sh rust` first.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tasker_wasm_host::{
    CallError, CallInput, GuestLevel, GuestLog, GuestResult, HostConfig, Limit, LoadError,
    LoadedFrom, WasmHost,
};

fn examples_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("wasm-examples")
}

fn guest(name: &str) -> Vec<u8> {
    let path = examples_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the guests with scripts/build-wasm-examples.sh",
            path.display()
        )
    })
}

fn host(cache: Option<PathBuf>) -> WasmHost {
    WasmHost::new(HostConfig {
        memory_limit_bytes: 256 << 20,
        max_result_bytes: 1 << 20,
        max_output_bytes: 4096,
        max_concurrent_calls: 4,
        cache_dir: cache,
        ..HostConfig::default()
    })
    .expect("host")
}

fn input(config: &str) -> CallInput {
    CallInput {
        task_id: "t".into(),
        step_id: "s".into(),
        namespace: "demo".into(),
        template_name: "tpl".into(),
        step_name: "only".into(),
        attempt: 1,
        max_attempts: 1,
        input: r#"{"value": 3}"#.into(),
        parent_results: "{}".into(),
        config: config.into(),
        ..Default::default()
    }
}

fn call(
    host: &WasmHost,
    bytes: &[u8],
    config: &str,
    timeout: Duration,
) -> Result<tasker_wasm_host::CallOutput, CallError> {
    let sha = tasker_wasm_host::sha256_hex(bytes);
    let (prepared, _) = host.load(&sha, bytes).expect("load");
    host.call(
        &prepared,
        &input(config),
        timeout,
        Arc::new(AtomicBool::new(false)),
    )
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn math_guest_computes_and_reports_its_imports() {
    let h = host(None);
    let bytes = guest("math_rust.wasm");
    let info = h.validate(&bytes).expect("valid");
    assert_eq!(info.contract_version, "0.1.0");
    assert!(info
        .imports
        .iter()
        .all(|i| tasker_wasm_host::allowed_import(i)));
    let out = call(&h, &bytes, r#"{"op":"square"}"#, SECOND).unwrap();
    assert_eq!(
        out.result,
        GuestResult::Ok(r#"{"lang":"rust","value":9}"#.into())
    );
    // A step-error comes back as the guest said.
    let out = call(&h, &bytes, r#"{"op":"nope"}"#, SECOND).unwrap();
    assert!(
        matches!(&out.result, GuestResult::Err { retryable: false, message, .. } if message.contains("unknown op")),
        "{:?}",
        out.result
    );
}

#[test]
fn retryable_error_with_retry_after() {
    let h = host(None);
    let out = call(
        &h,
        &guest("hostile_rust.wasm"),
        r#"{"mode":"fail"}"#,
        SECOND,
    )
    .unwrap();
    assert_eq!(
        out.result,
        GuestResult::Err {
            retryable: true,
            message: "asked to fail".into(),
            retry_after_ms: Some(1500)
        }
    );
}

#[test]
fn endless_loop_hits_the_deadline() {
    let h = host(None);
    let clock = Instant::now();
    let e = call(
        &h,
        &guest("hostile_rust.wasm"),
        r#"{"mode":"loop"}"#,
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(matches!(e, CallError::Deadline(_)), "{e}");
    assert!(
        clock.elapsed() < Duration::from_secs(3),
        "{:?}",
        clock.elapsed()
    );
}

#[test]
fn cancellation_stops_a_running_guest() {
    let h = host(None);
    let bytes = guest("hostile_rust.wasm");
    let (prepared, _) = h
        .load(&tasker_wasm_host::sha256_hex(&bytes), &bytes)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let e = h
        .call(
            &prepared,
            &input(r#"{"mode":"loop"}"#),
            Duration::from_secs(30),
            stop,
        )
        .unwrap_err();
    assert!(matches!(e, CallError::Cancelled), "{e}");
}

#[test]
fn one_gib_allocation_hits_the_memory_limit() {
    let h = host(None);
    let e = call(
        &h,
        &guest("hostile_rust.wasm"),
        r#"{"mode":"alloc"}"#,
        SECOND,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            CallError::Limit {
                limit: Limit::Memory,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("memory limit"), "{e}");
}

#[test]
fn panic_is_a_trap() {
    let h = host(None);
    let out_err = call(
        &h,
        &guest("hostile_rust.wasm"),
        r#"{"mode":"panic"}"#,
        SECOND,
    )
    .unwrap_err();
    assert!(matches!(out_err, CallError::Trap(_)), "{out_err}");
    assert!(out_err.to_string().contains("trap"), "{out_err}");
}

#[test]
fn big_result_is_refused() {
    let h = host(None);
    let e = call(
        &h,
        &guest("hostile_rust.wasm"),
        r#"{"mode":"big_result"}"#,
        Duration::from_secs(10),
    )
    .unwrap_err();
    assert!(
        matches!(e, CallError::ResultTooLarge { cap, .. } if cap == 1 << 20),
        "{e}"
    );
}

#[test]
fn stdout_is_captured_and_capped() {
    let h = host(None);
    let out = call(
        &h,
        &guest("hostile_rust.wasm"),
        r#"{"mode":"print"}"#,
        SECOND,
    )
    .unwrap();
    assert_eq!(out.result, GuestResult::Ok(r#""printed""#.into()));
    assert_eq!(out.stdout.len(), 4096);
    assert!(out.output_dropped > 1_000_000, "{}", out.output_dropped);
    assert_eq!(out.stderr, "done printing\n");
}

#[test]
fn the_host_survives_hostile_calls() {
    let h = host(None);
    let hostile = guest("hostile_rust.wasm");
    for mode in ["panic", "alloc", "loop", "panic"] {
        let config = format!(r#"{{"mode":"{mode}"}}"#);
        assert!(call(&h, &hostile, &config, Duration::from_millis(200)).is_err());
        let ok = call(&h, &hostile, "{}", SECOND).unwrap();
        assert!(matches!(ok.result, GuestResult::Ok(_)));
    }
}

/// Isolation between tasks: every call starts from the component's initial
/// image (the pooled slot's memory is reset, kept-resident pages included),
/// so nothing one task's call leaves in globals or on the heap reaches the
/// next, however many calls reuse the slot.
#[test]
fn no_state_carries_from_one_call_to_the_next() {
    let h = host(None);
    let hostile = guest("hostile_rust.wasm");
    for i in 0..50 {
        let config = format!(r#"{{"mode":"remember","secret":"task-{i}"}}"#);
        let out = call(&h, &hostile, &config, SECOND).unwrap();
        let GuestResult::Ok(text) = &out.result else {
            panic!("call {i}: {:?}", out.result)
        };
        assert_eq!(
            text, r#"{"calls":1,"seen":null}"#,
            "call {i} saw an earlier call's state"
        );
        if i % 10 == 9 {
            // A trap in between leaves nothing behind either.
            assert!(call(&h, &hostile, r#"{"mode":"panic"}"#, SECOND).is_err());
        }
    }
}

#[test]
fn imports_outside_the_contract_are_refused() {
    let h = host(None);
    let e = h.validate(&guest("bad_import_rust.wasm")).unwrap_err();
    assert!(
        matches!(&e, LoadError::ForbiddenImport { name } if name.starts_with("acme:exfil/net")),
        "{e}"
    );
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempdir();
    let bytes = guest("noop_rust.wasm");
    let sha = tasker_wasm_host::sha256_hex(&bytes);
    {
        let h = host(Some(dir.clone()));
        assert!(h.cached(&sha).is_none());
        let (_, from) = h.load(&sha, &bytes).unwrap();
        assert_eq!(from, LoadedFrom::Compiled);
        let (_, from) = h.load(&sha, &bytes).unwrap();
        assert_eq!(from, LoadedFrom::Memory);
    }
    // A new host (a restarted worker) finds it on disk, without the bytes.
    let h = host(Some(dir.clone()));
    let (prepared, from) = h.cached(&sha).expect("on disk");
    assert_eq!(from, LoadedFrom::Disk);
    let out = h
        .call(
            &prepared,
            &input("{}"),
            SECOND,
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap();
    assert_eq!(out.result, GuestResult::Ok("null".into()));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [format!("{sha}-{}.cwasm", h.fingerprint())]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A deleted upload is forgotten (memory and disk); a validation of bytes
/// compiled before reuses the disk cache instead of compiling again.
#[test]
fn evicted_components_leave_memory_and_disk_and_revalidation_reuses_the_cache() {
    let dir = tempdir();
    let bytes = guest("noop_rust.wasm");
    let sha = tasker_wasm_host::sha256_hex(&bytes);
    let h = host(Some(dir.clone()));
    let first = Instant::now();
    h.validate(&bytes).unwrap();
    let compiled = first.elapsed();
    assert_eq!(h.cached_in_memory(), 1);
    // Another process on this machine validates the same bytes: from disk.
    let other = host(Some(dir.clone()));
    let again = Instant::now();
    let info = other.validate(&bytes).unwrap();
    let reused = again.elapsed();
    eprintln!("validate: compiled {compiled:?}, from the disk cache {reused:?}");
    assert_eq!(info.sha256, sha);
    assert!(reused < compiled, "{reused:?} vs {compiled:?}");
    // Deleted: gone from memory and disk.
    assert!(h.evict(&sha));
    assert_eq!(h.cached_in_memory(), 0);
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    assert!(!h.evict(&sha), "nothing left to forget");
    // A sweep keeps only what is still uploaded.
    let keep: std::collections::HashSet<String> = [sha.clone()].into();
    assert_eq!(other.retain_only(&keep), 0);
    assert_eq!(other.retain_only(&Default::default()), 1);
    assert_eq!(other.cached_in_memory(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tasker-wasm-host-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Collects what a call's guest logged.
#[derive(Debug, Default)]
struct Lines(std::sync::Mutex<Vec<(GuestLevel, String)>>);

impl GuestLog for Lines {
    fn line(&self, level: GuestLevel, message: &str) {
        if let Ok(mut v) = self.0.lock() {
            v.push((level, message.to_string()));
        }
    }
}

#[test]
fn log_lines_and_output_reach_the_calls_log_and_trace_context_the_guest() {
    let h = host(None);
    let math = guest("math_rust.wasm");
    let (prepared, _) = h.load(&tasker_wasm_host::sha256_hex(&math), &math).unwrap();
    let lines = Arc::new(Lines::default());
    let mut inp = input(r#"{"op":"square"}"#);
    inp.log = Some(lines.clone());
    h.call(&prepared, &inp, SECOND, Arc::new(AtomicBool::new(false)))
        .unwrap();
    assert_eq!(
        *lines.0.lock().unwrap(),
        [
            (GuestLevel::Info, "only -> 9".to_string()),
            (GuestLevel::Info, "computed 9 (attempt 1)".to_string())
        ]
    );

    // stderr lines are warnings, kept when the call traps; the cap is noted.
    let hostile = guest("hostile_rust.wasm");
    let (prepared, _) = h
        .load(&tasker_wasm_host::sha256_hex(&hostile), &hostile)
        .unwrap();
    for (mode, expect) in [
        ("panic", "panics on purpose"),
        ("print", "bytes of stdout/stderr dropped"),
    ] {
        let lines = Arc::new(Lines::default());
        let mut inp = input(&format!(r#"{{"mode":"{mode}"}}"#));
        inp.log = Some(lines.clone());
        let _ = h.call(&prepared, &inp, SECOND, Arc::new(AtomicBool::new(false)));
        let got = lines.0.lock().unwrap();
        assert!(
            got.iter()
                .any(|(l, m)| *l == GuestLevel::Warn && m.contains(expect)),
            "{mode}: {got:?}"
        );
    }

    // A guest importing `trace` reads the attempt's traceparent; the math
    // guest, which does not import it, loaded above all the same.
    let info = h.validate(&hostile).unwrap();
    assert!(
        info.imports
            .iter()
            .any(|i| i.starts_with("tasker:handler/trace@")),
        "{:?}",
        info.imports
    );
    assert!(!h
        .validate(&math)
        .unwrap()
        .imports
        .iter()
        .any(|i| i.contains("trace")));
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut inp = input(r#"{"mode":"traceparent"}"#);
    inp.traceparent = tp.to_string();
    let out = h
        .call(&prepared, &inp, SECOND, Arc::new(AtomicBool::new(false)))
        .unwrap();
    assert_eq!(out.result, GuestResult::Ok(format!("\"{tp}\"")));
    inp.traceparent = String::new();
    let out = h
        .call(&prepared, &inp, SECOND, Arc::new(AtomicBool::new(false)))
        .unwrap();
    assert_eq!(out.result, GuestResult::Ok("null".into()));
}
