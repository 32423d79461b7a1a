//! Does nothing and returns `null`: the dispatch-overhead benchmark's guest.
use tasker_guest::{Context, Handler, StepError, Value};

struct Noop;

impl Handler for Noop {
    fn handle(_ctx: Context) -> Result<Value, StepError> {
        Ok(Value::Null)
    }
}

tasker_guest::export!(Noop);
