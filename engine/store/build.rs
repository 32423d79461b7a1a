//! Embeds `migrations/functions/*.sql` and makes cargo rebuild when a migration
//! or a function file changes (`sqlx::migrate!` embeds the migrations but does
//! not tell cargo to watch them: sqlx's documented recommendation).
//!
//! Writes `$OUT_DIR/functions.rs`: one `FunctionFile { name, sha256, sql }` per
//! file, sorted by name, with the text inline (so the hash is always the hash
//! of the embedded text). `tasker_store::migrate::FUNCTIONS` includes it.

use std::fmt::Write as _;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
    println!("cargo:rerun-if-changed=../../migrations/functions");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../../migrations/functions");
    let mut files: Vec<(String, String)> = Vec::new();
    for entry in
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
    {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") || !path.is_file() {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        assert!(
            !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{}: a function file is named after its function (lowercase SQL identifier)",
            path.display()
        );
        println!("cargo:rerun-if-changed={}", path.display());
        let sql = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        files.push((name, sql));
    }
    files.sort();
    let mut out = String::from("&[\n");
    for (name, sql) in &files {
        let mut hash = String::with_capacity(64);
        for byte in Sha256::digest(sql.as_bytes()) {
            write!(hash, "{byte:02x}").unwrap();
        }
        writeln!(
            out,
            "    FunctionFile {{ name: {name:?}, sha256: {hash:?}, sql: {sql:?} }},"
        )
        .unwrap();
    }
    out.push(']');
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("functions.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
}
