//! Generates the C header from `src/` with cbindgen into `$OUT_DIR/tasker.h`.
//! With `TASKER_WRITE_HEADER=1` it also writes `bindings-c/include/tasker.h`,
//! the committed copy; the `header_is_current` test fails when that copy is stale.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=TASKER_WRITE_HEADER");
    let crate_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("abi/cbindgen.toml is valid");
    let header = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen can read abi/src");
    header.write_to_file(out_dir.join("tasker.h"));
    if std::env::var("TASKER_WRITE_HEADER").is_ok_and(|v| v == "1") {
        header.write_to_file(crate_dir.join("../bindings-c/include/tasker.h"));
    }
}
