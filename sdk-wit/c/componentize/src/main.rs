//! `tasker-componentize-c`: the two steps of building a C guest that clang
//! cannot do (see `sdk-wit/c/README.md`).
//!
//! ```text
//! tasker-componentize-c bindings WIT_DIR OUT_DIR [--world WORLD]
//!     The C bindings of WORLD (default `step-handler`) in the WIT package at
//!     WIT_DIR: WORLD.h, WORLD.c and WORLD_component_type.o (link all three).
//!     What `wit-bindgen c --world WORLD WIT_DIR` (wit-bindgen 0.63) writes.
//! tasker-componentize-c component MODULE.wasm -o COMPONENT.wasm
//!     Turns a core module linked for wasm32-wasi (with the `_component_type.o`
//!     above, `-mexec-model=reactor`) into a component: wit-component with the
//!     WASI preview1 reactor adapter of wasmtime 48. What `wasm-tools component
//!     new MODULE.wasm --adapt wasi_snapshot_preview1=ADAPTER -o COMPONENT.wasm`
//!     does.
//! tasker-componentize-c adapter OUT.wasm
//!     Writes that adapter (for use with wasm-tools).
//! ```
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::wit_parser::Resolve;
use wit_bindgen_core::Files;

const USAGE: &str = "usage:
  tasker-componentize-c bindings WIT_DIR OUT_DIR [--world WORLD]
  tasker-componentize-c component MODULE.wasm -o COMPONENT.wasm
  tasker-componentize-c adapter OUT.wasm";

fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()) {
        eprintln!("tasker-componentize-c: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["bindings", wit, out] => bindings(Path::new(wit), Path::new(out), "step-handler"),
        ["bindings", wit, out, "--world", world] | ["bindings", "--world", world, wit, out] => {
            bindings(Path::new(wit), Path::new(out), world)
        }
        ["component", module, "-o", out] | ["component", "-o", out, module] => {
            component(Path::new(module), Path::new(out))
        }
        ["adapter", out] => write(Path::new(out), WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("bad arguments\n{USAGE}"),
    }
}

/// wit-bindgen's C generator over the world `world` of the package at `wit`.
fn bindings(wit: &Path, out: &Path, world: &str) -> Result<()> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_path(wit)
        .with_context(|| format!("reading the WIT package at {}", wit.display()))?;
    let world = resolve.select_world(&[pkg], Some(world))?;
    let mut files = Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, contents) in files.iter() {
        write(&out.join(name), contents)?;
    }
    Ok(())
}

/// A core module (with its component-type custom section) into a component.
fn component(module: &Path, out: &Path) -> Result<()> {
    let bytes = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .context("reading the module's WIT metadata (is WORLD_component_type.o linked in?)")?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .with_context(|| format!("encoding {} as a component", module.display()))?;
    write(out, &component)
}

fn write(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
