//! `tasker handler upload|list|delete`: WASM handler components over the
//! admin API. `tasker bench wasm` lives in the tasker-bench crate.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::Table;

use super::remote::explain;
use tasker_client::Client;

#[derive(Subcommand)]
pub enum HandlerCmd {
    /// Upload a WASM component (tasker:handler@0.1.0) as handler NAME at VERSION.
    Upload {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Handler name, as templates name it.
        #[arg(long)]
        name: String,
        /// MAJOR.MINOR.PATCH.
        #[arg(long)]
        version: String,
        #[arg(long)]
        json: bool,
    },
    /// List uploaded components.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete one uploaded version.
    Delete { name: String, version: String },
}

pub async fn run(c: &Client, cmd: HandlerCmd) -> anyhow::Result<()> {
    match cmd {
        HandlerCmd::Upload {
            file,
            name,
            version,
            json,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let r = c
                .upload_handler(&name, &version, bytes)
                .await
                .map_err(|e| explain(c, e))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} {}@{} ({} bytes, sha256 {}, contract {})",
                    if r.created { "uploaded" } else { "unchanged" },
                    r.handler.name,
                    r.handler.version,
                    r.handler.size_bytes,
                    r.handler.sha256,
                    r.handler.contract_version
                );
            }
        }
        HandlerCmd::List { json } => {
            let list = c.list_handlers().await.map_err(|e| explain(c, e))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let mut table = Table::new();
            table.set_header(["name", "version", "size", "sha256", "contract", "uploaded"]);
            for h in list.handlers {
                table.add_row([
                    h.name,
                    h.version,
                    h.size_bytes.to_string(),
                    h.sha256[..12.min(h.sha256.len())].to_string(),
                    h.contract_version,
                    h.uploaded_at.to_rfc3339(),
                ]);
            }
            println!("{table}");
        }
        HandlerCmd::Delete { name, version } => {
            c.delete_handler(&name, &version)
                .await
                .map_err(|e| explain(c, e))?;
            println!("deleted {name}@{version}");
        }
    }
    Ok(())
}
