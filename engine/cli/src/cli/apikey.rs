//! `tasker apikey create|list|revoke`: API keys for the admin API.

use chrono::{DateTime, TimeDelta, Utc};
use clap::Subcommand;
use comfy_table::Table;
use tasker_api::keys::{self, KeySpec, Permission};
use tasker_config::TaskerConfig;

#[derive(Subcommand)]
pub enum ApiKeyCmd {
    /// Create a key; the secret is printed once and stored only as a hash.
    Create {
        /// A unique name for the key (who or what uses it).
        name: String,
        /// Permissions, comma separated: tasks:create, tasks:read, tasks:cancel,
        /// steps:resolve, templates:write, components:write, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        permissions: Vec<String>,
        /// Limit the key to these namespaces (repeat or comma separate): it
        /// creates, reads and acts only inside them. Not with `admin`.
        #[arg(long = "namespace", value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Refuse the key after this: a duration from now (`90m`, `12h`,
        /// `30d`) or an RFC 3339 instant (`2027-01-01T00:00:00Z`).
        #[arg(long, value_parser = parse_expiry)]
        expires: Option<DateTime<Utc>>,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or name.
    Revoke { key: String },
}

pub async fn run(cmd: ApiKeyCmd, config: &TaskerConfig) -> anyhow::Result<()> {
    let db = super::open_db(config).await?;
    match cmd {
        ApiKeyCmd::Create {
            name,
            permissions,
            namespaces,
            expires,
        } => {
            let perms = permissions
                .iter()
                .map(|p| p.trim().parse::<Permission>())
                .collect::<Result<Vec<_>, _>>()?;
            let spec = KeySpec {
                namespaces: (!namespaces.is_empty())
                    .then(|| namespaces.iter().map(|n| n.trim().to_string()).collect()),
                expires_at: expires,
                ..KeySpec::new(&name, &perms)
            };
            let (id, key) = keys::create_key(&db.pool, &spec).await?;
            println!("created key {name} ({id})");
            println!("{key}");
            eprintln!("store it now: the secret is not shown again");
        }
        ApiKeyCmd::List { json } => {
            let all = keys::list_keys(&db.pool).await?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id, "name": k.name, "prefix": k.prefix,
                            "permissions": k.permissions, "namespaces": k.namespaces,
                            "created_at": k.created_at, "expires_at": k.expires_at,
                            "revoked_at": k.revoked_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut table = Table::new();
                table.set_header([
                    "name",
                    "prefix",
                    "permissions",
                    "namespaces",
                    "created",
                    "expires",
                    "revoked",
                ]);
                for k in all {
                    table.add_row([
                        k.name,
                        k.prefix,
                        k.permissions.join(","),
                        k.namespaces
                            .map(|n| n.join(","))
                            .unwrap_or_else(|| "*".into()),
                        k.created_at.to_rfc3339(),
                        k.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        k.revoked_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    ]);
                }
                println!("{table}");
            }
        }
        ApiKeyCmd::Revoke { key } => {
            if !keys::revoke_key(&db.pool, &key).await? {
                anyhow::bail!("no active key with id or name '{key}'");
            }
            println!("revoked {key}");
        }
    }
    db.close().await;
    Ok(())
}

/// `--expires`: `<n>m`, `<n>h`, `<n>d` from now, or an RFC 3339 instant.
fn parse_expiry(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let bad = || format!("'{text}' is neither a duration (90m, 12h, 30d) nor an RFC 3339 instant");
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let span = match unit {
        "m" => TimeDelta::try_minutes(n),
        "h" => TimeDelta::try_hours(n),
        "d" => TimeDelta::try_days(n),
        _ => None,
    }
    .filter(|d| *d > TimeDelta::zero())
    .ok_or_else(bad)?;
    Utc::now().checked_add_signed(span).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_reads_durations_and_instants() {
        let in_a_day = parse_expiry("1d").unwrap() - Utc::now();
        assert!((in_a_day - TimeDelta::days(1)).abs() < TimeDelta::seconds(5));
        assert_eq!(
            parse_expiry("2027-01-01T00:00:00Z").unwrap().to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
        for bad in [
            "",
            "d",
            "10",
            "10y",
            "-5d",
            "0h",
            "99999999999999d",
            "tomorrow",
        ] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
    }
}
