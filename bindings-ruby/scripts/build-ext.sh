#!/usr/bin/env bash
# Builds the extension (release) in the
# repository and puts it where `ruby -I lib -r tasker` finds it:
# lib/tasker/tasker_rb.so.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$here/../target}"
RUBY="$(ruby -e 'print RbConfig.ruby')" CARGO_TARGET_DIR="$target" \
  cargo build --release --locked --manifest-path "$here/ext/tasker/Cargo.toml"
cp "$target/release/libtasker_rb.so" "$here/lib/tasker/tasker_rb.so"
