//! `tasker apikey create|list|revoke`: API keys for the admin API.

use clap::Subcommand;
use comfy_table::Table;
use tasker_api::keys::{self, Permission};
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
        ApiKeyCmd::Create { name, permissions } => {
            let perms = permissions
                .iter()
                .map(|p| p.trim().parse::<Permission>())
                .collect::<Result<Vec<_>, _>>()?;
            let (id, key) = keys::create_key(&db.pool, &name, &perms).await?;
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
                            "permissions": k.permissions, "created_at": k.created_at,
                            "revoked_at": k.revoked_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut table = Table::new();
                table.set_header(["name", "prefix", "permissions", "created", "revoked"]);
                for k in all {
                    table.add_row([
                        k.name,
                        k.prefix,
                        k.permissions.join(","),
                        k.created_at.to_rfc3339(),
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
