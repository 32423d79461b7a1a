#!/usr/bin/env bash
# Runs the whole test suite: formatting-independent, against a real PostgreSQL.
# Each database test creates (and drops) its own database through #[sqlx::test],
# so DATABASE_URL must point at a server where the user may CREATE DATABASE.
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
# The Rust WASM guests the tests upload (seconds; .ci/run builds the Python and
# JS ones too, see scripts/build-wasm-examples.sh).
./scripts/build-wasm-examples.sh rust
stage "cargo test"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
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
stage "Python package"
./scripts/test-python.sh
# --- end Python package ---

# --- bindings-ruby (begin) ---
# The Ruby gem: extension build, rspec suite, installed-gem smoke test.
stage "Ruby gem"
./bindings-ruby/scripts/test.sh
# --- bindings-ruby (end) ---
stage "all tests passed (target dir: $(du -sh "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1))"
