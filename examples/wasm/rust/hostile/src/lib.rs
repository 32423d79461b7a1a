//! A misbehaving handler for the sandbox tests; `config.mode` picks how:
//! `loop` (never returns), `alloc` (1 GiB), `panic` (a trap), `big_result`
//! (a 100 MB result), `print` (writes 1 MB to stdout and succeeds),
//! `fail` (a retryable error with retry-after), `traceparent` (returns the
//! contract's `trace.traceparent`, null when empty: a guest importing `trace`),
//! `remember` (counts its calls and keeps `config.secret` in globals, then
//! returns the count and the secret an earlier call left: a guest trying to
//! carry state from one task to the next), anything else succeeds.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tasker_guest::{json, Context, Handler, StepError, Value};

/// Calls this instance has seen (`remember`).
static CALLS: AtomicU64 = AtomicU64::new(0);
/// The secret the previous call left (`remember`), on the heap.
static SEEN: Mutex<Option<String>> = Mutex::new(None);

struct Hostile;

impl Handler for Hostile {
    fn handle(ctx: Context) -> Result<Value, StepError> {
        match ctx.config["mode"].as_str().unwrap_or("") {
            "loop" => {
                let mut i: u64 = 0;
                loop {
                    i = std::hint::black_box(i.wrapping_add(1));
                }
            }
            "alloc" => {
                let v = vec![1u8; 1 << 30];
                Ok(json!(std::hint::black_box(v).len()))
            }
            "panic" => panic!("hostile guest panics on purpose"),
            "big_result" => Ok(Value::String("x".repeat(100 << 20))),
            "print" => {
                let line = "y".repeat(1023);
                for _ in 0..1024 {
                    println!("{line}");
                }
                eprintln!("done printing");
                Ok(json!("printed"))
            }
            "traceparent" => Ok(json!(tasker_guest::traceparent())),
            "remember" => {
                let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
                let secret = ctx.config["secret"].as_str().map(str::to_string);
                let seen = match SEEN.lock() {
                    Ok(mut kept) => std::mem::replace(&mut *kept, secret),
                    Err(_) => None,
                };
                Ok(json!({ "calls": calls, "seen": seen }))
            }
            "fail" => Err(StepError::retryable("asked to fail").retry_after_ms(1500)),
            _ => Ok(json!({ "ok": true, "attempt": ctx.attempt })),
        }
    }
}

tasker_guest::export!(Hostile);
