#!/usr/bin/env bash
# Builds tasker-<version>.gem into OUT_DIR (default: bindings-ruby/pkg).
#
# An installed gem is built from its own directory, where the repository's
# abi and engine crates do not exist: scripts/vendor.sh first copies them
# (and what the engine embeds: migrations/, config/, examples/templates/) into
# ext/tasker/vendor/, which the gem ships. `gem install --local` of the result
# then needs only Ruby's headers, clang (libclang for bindgen) and cargo.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/pkg}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
"$here/scripts/vendor.sh"
version="$(ruby -r "$here/lib/tasker/version.rb" -e 'print Tasker::VERSION')"
(cd "$here" && gem build tasker.gemspec --output "$out/tasker-$version.gem" >/dev/null 2>&1) \
  || (cd "$here" && gem build tasker.gemspec --output "$out/tasker-$version.gem")
echo "$out/tasker-$version.gem"
