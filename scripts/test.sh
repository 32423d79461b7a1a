#!/usr/bin/env bash
# Runs the whole test suite against a real PostgreSQL, after installing what it
# needs (scripts/setup.sh: Debian packages, rustup components, the WASM target,
# PostgreSQL started). Each database test creates (and drops) its own
# database, so DATABASE_URL must point at a server where the user may CREATE
# DATABASE (default: postgres://postgres@127.0.0.1:5432/postgres).
#
# Order: set-up, formatting, one clippy over the whole workspace (the Python
# and Ruby extensions included), then the suites: Rust (unit, integration,
# multi-process, doc), the CLI, libtasker from C under valgrind, the API fuzz
# run, the Python package, the Ruby gem, the polyglot workflow (one template,
# five runtimes, each worker its own process), the dashboard in headless
# Chromium. .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# One target directory for every build below (the workspace, libtasker for C,
# the Python wheel, the Ruby gem's extension): each reuses what the others built.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
t0=$(date +%s)
stage() { echo "== test.sh [$(( $(date +%s) - t0 )) s] $*"; }
# TASKER_* variables are configuration keys; keep the caller's out of the tests.
unset TASKER_ENV TASKER_CONFIG_DIR
stage "set-up"
./scripts/setup.sh
stage "fmt"
cargo fmt --all -- --check
stage "clippy (the whole workspace, the language extensions included)"
cargo clippy --workspace --all-targets --locked -- -D warnings
stage "WASM guest examples (Rust; C, Python and JavaScript unless QUICK=1)"
if [ "${QUICK:-0}" = 1 ]; then ./scripts/build-wasm-examples.sh rust; else ./scripts/build-wasm-examples.sh; fi
stage "cargo test"
# The default members: everything but the language extensions, which the
# Python and Ruby suites below build and test as their users install them.
# The multi-process tests (tests/) run the `tasker` binary: `cargo test`
# builds it before any test runs (tasker-cli's own tests need it), with the
# features of this build. (A `cargo build -p tasker-cli` resolves other
# features and compiled the engine and wasmtime a second time.) The later
# stages reuse this build: they select the workspace, never `-p`.
cargo test --all-targets --locked
cargo test --doc --locked
stage "the CLI"
# The CLI against a fresh database: migrate, validate the examples and the config.
tasker="${CARGO_TARGET_DIR:-target}/debug/tasker"
export TASKER_DATABASE__URL="${DATABASE_URL%/*}/tasker_cli_test"
psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS tasker_cli_test" -c "CREATE DATABASE tasker_cli_test"
"$tasker" migrate
"$tasker" migrate
"$tasker" template validate examples/templates
"$tasker" config validate
"$tasker" demo
psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS tasker_cli_test"
unset TASKER_DATABASE__URL
stage "C bindings"
# libtasker from C: the examples and C tests, shared and static, under valgrind.
make -s -C bindings-c all
bindings-c/run-tests.sh
stage "API fuzz"
# Fuzz the served API against its own OpenAPI spec (schemathesis from PyPI).
./scripts/fuzz-api.sh
# --- Python package (bindings-python/): installed-package smoke test + pytest ---
# The wheel and (below) the gem's extension are built unoptimized: they reuse
# the debug artifacts of libtasker's build just above, where release builds
# compiled the engine a second time (339 s of a cold run). Users' `pip
# install` and `gem install` build release; the benchmarks build release.
stage "Python package"
PROFILE=debug ./scripts/test-python.sh
# --- end Python package ---

# --- bindings-ruby (begin) ---
# The Ruby gem: extension build, rspec suite, installed-gem smoke test.
stage "Ruby gem"
PROFILE=debug ./bindings-ruby/scripts/test.sh
# --- bindings-ruby (end) ---
if [ "${QUICK:-0}" != 1 ]; then
  stage "polyglot workflow (WASM Rust/Python/JS/C, Python, Ruby and C workers as processes)"
  # Reuses the Python virtualenv and Ruby extension built just above.
  ./scripts/test-polyglot.sh
fi
stage "the dashboard in a real browser (headless Chromium over WebDriver)"
./scripts/test-ui.sh
stage "all tests passed (target dir: $(du -sh "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1))"
