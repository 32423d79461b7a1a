//! Rebuild when a migration changes: `sqlx::migrate!` embeds the files but does
//! not tell cargo to watch them (sqlx's documented recommendation).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
