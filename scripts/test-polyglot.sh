#!/usr/bin/env bash
# The polyglot multi-process tests. tests/tests/traces.rs: one task's trace
# across the CLI, the server, a Rust and a Python worker, received by an OTLP
# collector in the test. tests/tests/polyglot.rs: one template in one
# namespace whose steps run in five runtimes (WASM components from Rust,
# Python, JavaScript and C in `tasker worker --pool wasm`, native Python, Ruby
# and C workers), each in its own process; 140 orders; a SIGKILLed Ruby worker.
#
# Builds what the test needs and is missing (examples/polyglot/prepare.sh): the
# tasker binary, the WASM guests, the Python package (reusing the virtualenv of
# scripts/test-python.sh when it is current), the Ruby extension (reusing the
# one bindings-ruby/scripts/test.sh leaves in bindings-ruby/lib/tasker/), the C
# worker against libtasker; then runs the test, which is #[ignore]d in a plain
# `cargo test` because of those.
#
# DATABASE_URL must point at a server where the user may CREATE DATABASE
# (default: postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# The test starts `tasker` processes: keep the caller's configuration out.
unset TASKER_ENV TASKER_CONFIG_DIR
t0=$(date +%s)
PROFILE=debug  # the test runs target/debug/tasker
# shellcheck source=../examples/polyglot/prepare.sh
. examples/polyglot/prepare.sh
polyglot_prepare
echo "== polyglot: prepared in $(( $(date +%s) - t0 )) s; running the test"
POLYGLOT_PYTHON="$POLYGLOT_PYTHON" POLYGLOT_RUBY_LIB="$POLYGLOT_RUBY_LIB" POLYGLOT_C_WORKER="$POLYGLOT_C_WORKER" \
  cargo test --locked --test polyglot --test traces -- --ignored --nocapture
echo "== polyglot: done in $(( $(date +%s) - t0 )) s"
