#!/usr/bin/env bash
# The dashboard's browser test (tests/tests/ui.rs): a `tasker server` and a
# `tasker worker` as processes on a fresh database, and Debian's headless
# Chromium driven over WebDriver by chromedriver: sign in, create tasks, watch
# a DAG update live, retry a failed step, a read-only key, no console errors,
# no request leaving the origin. Screenshots of each page go to
# $CARGO_TARGET_DIR/ui-screenshots/ (target/ui-screenshots/).
#
# #[ignore]d in a plain `cargo test` (it needs the browser); this script runs
# it and fails when `chromium` or `chromedriver` is missing (scripts/setup.sh
# installs Debian's `chromium` and `chromium-driver`). About 35 s once built.
#
# DATABASE_URL must point at a server where the user may CREATE DATABASE
# (default: postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# The test starts `tasker` processes: keep the caller's configuration out.
unset TASKER_ENV TASKER_CONFIG_DIR
for program in chromium chromedriver; do
  command -v "$program" >/dev/null || {
    echo "test-ui.sh: '$program' is missing: install Debian's chromium and chromium-driver (scripts/setup.sh)" >&2
    exit 1
  }
done
t0=$(date +%s)
# The `tasker` binary as scripts/test.sh's `cargo test` builds it (a
# tasker-cli test needs it; `-p` would resolve other features and rebuild).
cargo test --locked --no-run --test config_env
rm -rf "$CARGO_TARGET_DIR/ui-screenshots"
cargo test --locked --test ui -- --ignored --nocapture
echo "== dashboard browser test: done in $(( $(date +%s) - t0 )) s; screenshots in $CARGO_TARGET_DIR/ui-screenshots/"
