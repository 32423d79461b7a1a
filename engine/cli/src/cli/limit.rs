//! `tasker limit set|list|show|delete`: named rate limits, through the admin
//! API. Steps reference a limit in their template (`rate_limit: { name:
//! payments, key: input.customer_id }`); workers start them no faster than
//! its rate, across processes; a step over the limit waits
//! (`docs/flow-control.md`).

use clap::Subcommand;
use comfy_table::Table;

use tasker_api_types::{Limit, SetLimitRequest};
use tasker_client::Client;
use tasker_model::template::parse_rate;

use super::remote::{explain, print_json};

#[derive(Subcommand)]
pub enum LimitCmd {
    /// Define a limit, or change its rate and burst.
    Set {
        /// The name steps reference (`rate_limit: { name: ... }`).
        name: String,
        /// Steps per second, minute or hour: `100/s`, `6000/m`, `10/h`.
        #[arg(long, value_parser = parse_rate_arg)]
        rate: f64,
        /// Steps that may start at once after a quiet spell (default 1:
        /// evenly spaced starts).
        #[arg(long, default_value_t = 1)]
        burst: u32,
        #[arg(long)]
        json: bool,
    },
    /// The defined limits.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One limit.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a limit: the steps that reference it run unlimited.
    Delete { name: String },
}

fn parse_rate_arg(s: &str) -> Result<f64, String> {
    parse_rate(s)
}

pub async fn run(c: &Client, cmd: LimitCmd) -> anyhow::Result<()> {
    match cmd {
        LimitCmd::Set {
            name,
            rate,
            burst,
            json,
        } => {
            let req = SetLimitRequest {
                per_second: rate,
                burst,
            };
            let l = c.set_limit(&name, &req).await.map_err(|e| explain(c, e))?;
            if json {
                return print_json(&l);
            }
            println!("limit {} set: {}, burst {}", l.name, l.rate, l.burst);
            Ok(())
        }
        LimitCmd::List { json } => {
            let page = c.list_limits().await.map_err(|e| explain(c, e))?;
            if json {
                return print_json(&page);
            }
            if page.limits.is_empty() {
                println!("no rate limits are defined");
                return Ok(());
            }
            println!("{}", table(&page.limits));
            Ok(())
        }
        LimitCmd::Show { name, json } => {
            let l = c.get_limit(&name).await.map_err(|e| explain(c, e))?;
            if json {
                return print_json(&l);
            }
            println!("{}", table(std::slice::from_ref(&l)));
            Ok(())
        }
        LimitCmd::Delete { name } => {
            c.delete_limit(&name).await.map_err(|e| explain(c, e))?;
            println!("limit {name} deleted: the steps that reference it run unlimited");
            Ok(())
        }
    }
}

fn table(limits: &[Limit]) -> Table {
    let mut table = Table::new();
    table.set_header(["name", "rate", "per second", "burst", "updated"]);
    for l in limits {
        table.add_row([
            l.name.clone(),
            l.rate.clone(),
            format!("{}", l.per_second),
            l.burst.to_string(),
            l.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        ]);
    }
    table
}
