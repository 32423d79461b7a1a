//! `math.compute` as a WASM component: n is the task input's `value` for a
//! root step, otherwise the sum of the parents' `value`s; the result is
//! `{"value": op(n)}` with `config.op` one of `square`, `add`, `multiply`
//! (`config.operand`, default 1).
use tasker_guest::{json, Context, Handler, StepError, Value};

struct Compute;

impl Handler for Compute {
    fn handle(ctx: Context) -> Result<Value, StepError> {
        let n = match ctx.parent_results.as_object().filter(|p| !p.is_empty()) {
            None => ctx.input["value"]
                .as_i64()
                .ok_or_else(|| StepError::permanent("input `value` must be an integer"))?,
            Some(parents) => parents
                .iter()
                .map(|(name, r)| {
                    r["value"].as_i64().ok_or_else(|| {
                        StepError::permanent(format!("parent `{name}` has no integer `value`"))
                    })
                })
                .try_fold(0i64, |sum, v| {
                    sum.checked_add(v?)
                        .ok_or_else(|| StepError::permanent("overflow"))
                })?,
        };
        let operand = ctx.config["operand"].as_i64().unwrap_or(1);
        let value = match ctx.config["op"].as_str() {
            Some("square") => n.checked_mul(n),
            Some("add") => n.checked_add(operand),
            Some("multiply") => n.checked_mul(operand),
            other => return Err(StepError::permanent(format!("unknown op {other:?}"))),
        }
        .ok_or_else(|| StepError::permanent("overflow"))?;
        // Both land in the attempt's log (`tasker step logs`): the `log`
        // import at its level, stdout as `info` lines.
        tasker_guest::log(
            tasker_guest::Level::Info,
            &format!("{} -> {value}", ctx.step_name),
        );
        println!("computed {value} (attempt {})", ctx.attempt);
        Ok(json!({ "value": value, "lang": "rust" }))
    }
}

tasker_guest::export!(Compute);
