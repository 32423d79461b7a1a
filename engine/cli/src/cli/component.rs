//! `tasker component upload|list|delete` (old name: `tasker handler`):
//! uploaded WASM components over the admin API. `tasker bench wasm` lives in the tasker-bench crate.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::Table;

use super::remote::explain;
use tasker_client::Client;

#[derive(Subcommand)]
pub enum ComponentCmd {
    /// Upload a WASM component (tasker:handler@0.1.0) as NAME at VERSION.
    Upload {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Component name, as a template's step `handler.name` names it.
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

pub async fn run(c: &Client, cmd: ComponentCmd) -> anyhow::Result<()> {
    match cmd {
        ComponentCmd::Upload {
            file,
            name,
            version,
            json,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let r = c
                .upload_component(&name, &version, bytes)
                .await
                .map_err(|e| explain(c, e))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} {}@{} ({} bytes, sha256 {}, contract {})",
                    if r.created { "uploaded" } else { "unchanged" },
                    r.component.name,
                    r.component.version,
                    r.component.size_bytes,
                    r.component.sha256,
                    r.component.contract_version
                );
            }
        }
        ComponentCmd::List { json } => {
            let list = c.list_components().await.map_err(|e| explain(c, e))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let mut table = Table::new();
            table.set_header(["name", "version", "size", "sha256", "contract", "uploaded"]);
            for m in list.components {
                table.add_row([
                    m.name,
                    m.version,
                    m.size_bytes.to_string(),
                    m.sha256[..12.min(m.sha256.len())].to_string(),
                    m.contract_version,
                    m.uploaded_at.to_rfc3339(),
                ]);
            }
            println!("{table}");
        }
        ComponentCmd::Delete { name, version } => {
            c.delete_component(&name, &version)
                .await
                .map_err(|e| explain(c, e))?;
            println!("deleted {name}@{version}");
        }
    }
    Ok(())
}
