//! `tasker schedule create|list|show|pause|resume|delete`: templates fired on
//! a cron expression, through the admin API (`docs/schedules.md`); and the
//! `--delay` parser of `tasker task create`.

use anyhow::{anyhow, bail};
use clap::Subcommand;
use comfy_table::Table;
use uuid::Uuid;

use tasker_api_types::{CatchUp, CreateScheduleRequest, Schedule};
use tasker_client::Client;

use super::remote::{explain, print_json};

#[derive(Subcommand)]
pub enum ScheduleCmd {
    /// Fire a template on a cron expression, each tick exactly once.
    Create {
        /// Unique in the template's namespace.
        #[arg(long)]
        name: String,
        /// 5 fields (`*/5 * * * *`) or 6 with seconds first (`*/10 * * * * *`).
        #[arg(long)]
        cron: String,
        /// IANA time zone the expression is read in, e.g. Europe/Paris.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// `namespace/name` or `namespace/name@version` (default: the
        /// highest version registered at each tick).
        #[arg(long)]
        template: String,
        /// Each task's input as JSON (default `{}`).
        #[arg(long)]
        context: Option<String>,
        /// After downtime fire each missed tick (the latest 100 at most);
        /// without it only the latest missed tick fires.
        #[arg(long)]
        catch_up: bool,
        #[arg(long)]
        json: bool,
    },
    /// Schedules, oldest first.
    List {
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One schedule.
    Show {
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Stop firing until resumed.
    Pause {
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Fire again from the next tick (the ticks of the pause do not fire).
    Resume {
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Delete a schedule; the tasks it fired stay.
    Delete { id: Uuid },
}

pub async fn run(c: &Client, cmd: ScheduleCmd) -> anyhow::Result<()> {
    let one = |s: Schedule, json: bool| if json { print_json(&s) } else { show(&s) };
    match cmd {
        ScheduleCmd::Create {
            name,
            cron,
            timezone,
            template,
            context,
            catch_up,
            json,
        } => {
            let (namespace, template, version) = parse_template(&template)?;
            let context = match context {
                Some(text) => tasker_model::step::parse_json_exact(&text)
                    .map_err(|e| anyhow!("--context cannot be sent exactly: {e}"))?,
                None => serde_json::json!({}),
            };
            let req = CreateScheduleRequest {
                name,
                namespace,
                template,
                version,
                cron,
                timezone,
                context,
                catch_up: if catch_up {
                    CatchUp::CatchUp
                } else {
                    CatchUp::Skip
                },
            };
            let s = c.create_schedule(&req).await.map_err(|e| explain(c, e))?;
            one(s, json)
        }
        ScheduleCmd::List { namespace, json } => list(c, namespace, json).await,
        ScheduleCmd::Show { id, json } => {
            one(c.get_schedule(id).await.map_err(|e| explain(c, e))?, json)
        }
        ScheduleCmd::Pause { id, json } => {
            one(c.pause_schedule(id).await.map_err(|e| explain(c, e))?, json)
        }
        ScheduleCmd::Resume { id, json } => one(
            c.resume_schedule(id).await.map_err(|e| explain(c, e))?,
            json,
        ),
        ScheduleCmd::Delete { id } => {
            c.delete_schedule(id).await.map_err(|e| explain(c, e))?;
            println!("schedule {id} deleted");
            Ok(())
        }
    }
}

/// `ns/name[@version]` → (namespace, name, version).
fn parse_template(s: &str) -> anyhow::Result<(String, String, Option<String>)> {
    let (key, version) = match s.split_once('@') {
        Some((k, v)) if !v.is_empty() => (k, Some(v.to_string())),
        Some(_) => bail!("--template {s}: nothing after '@'"),
        None => (s, None),
    };
    match key.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string(), version))
        }
        _ => bail!("--template {s}: expected namespace/name or namespace/name@version"),
    }
}

async fn list(c: &Client, namespace: Option<String>, json: bool) -> anyhow::Result<()> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = c
            .list_schedules(namespace.as_deref(), cursor)
            .await
            .map_err(|e| explain(c, e))?;
        all.extend(page.schedules);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    if json {
        return print_json(&all);
    }
    let mut table = Table::new();
    table.set_header([
        "id",
        "name",
        "template",
        "cron",
        "timezone",
        "state",
        "next fire",
    ]);
    for s in &all {
        table.add_row([
            s.id.to_string(),
            format!("{}/{}", s.namespace, s.name),
            template_key(s),
            s.cron.clone(),
            s.timezone.clone(),
            if s.paused { "paused" } else { "running" }.to_string(),
            s.next_fire_at.to_rfc3339(),
        ]);
    }
    println!("{table}");
    if all.is_empty() {
        println!("no schedules");
    }
    Ok(())
}

fn template_key(s: &Schedule) -> String {
    match &s.template_version {
        Some(v) => format!("{}/{}@{v}", s.namespace, s.template_name),
        None => format!("{}/{}", s.namespace, s.template_name),
    }
}

fn show(s: &Schedule) -> anyhow::Result<()> {
    println!("schedule  {}/{} ({})", s.namespace, s.name, s.id);
    println!("template  {}", template_key(s));
    println!("cron      {} in {}", s.cron, s.timezone);
    println!("catch-up  {}", s.catch_up);
    println!("state     {}", if s.paused { "paused" } else { "running" });
    println!("next fire {}", s.next_fire_at.to_rfc3339());
    if let Some(last) = s.last_fired_at {
        println!("last fire {}", last.to_rfc3339());
    }
    println!("context   {}", serde_json::to_string(&s.context)?);
    Ok(())
}

/// A delay such as `90s`, `10m`, `1h30m`, `2d` (a bare number is seconds),
/// in seconds.
pub fn parse_delay(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a delay: use e.g. 90s, 10m, 1h30m, 2d");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_and_template_keys_parse() {
        assert_eq!(parse_delay("10m"), Ok(600));
        assert_eq!(parse_delay("1h30m"), Ok(5_400));
        assert_eq!(parse_delay("2d"), Ok(172_800));
        assert_eq!(parse_delay("45"), Ok(45));
        for bad in ["", "m", "10x", "1h3", "-5s"] {
            assert!(parse_delay(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_template("demo/diamond@1.0.0").unwrap(),
            ("demo".into(), "diamond".into(), Some("1.0.0".into()))
        );
        assert_eq!(
            parse_template("demo/diamond").unwrap(),
            ("demo".into(), "diamond".into(), None)
        );
        assert!(parse_template("diamond").is_err());
        assert!(parse_template("demo/diamond@").is_err());
    }
}
