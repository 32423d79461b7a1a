//! A misbehaving handler for the sandbox tests; `config.mode` picks how:
//! `loop` (never returns), `alloc` (1 GiB), `panic` (a trap), `big_result`
//! (a 100 MB result), `print` (writes 1 MB to stdout and succeeds),
//! `fail` (a retryable error with retry-after), `traceparent` (returns the
//! contract's `trace.traceparent`, null when empty: a guest importing `trace`),
//! anything else succeeds.
use tasker_guest::{json, Context, Handler, StepError, Value};

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
            "fail" => Err(StepError::retryable("asked to fail").retry_after_ms(1500)),
            _ => Ok(json!({ "ok": true, "attempt": ctx.attempt })),
        }
    }
}

tasker_guest::export!(Hostile);
