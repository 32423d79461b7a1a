#!/usr/bin/env bash
# Builds tasker-<version>.gem into OUT_DIR (default: bindings-ruby/pkg).
#
# The extension crate depends on the repository's abi and engine crates by
# path; an installed gem is built from its own directory, where ../../../abi
# does not exist. So the gem is built from a staged copy in which those crates
# (and what the engine embeds at compile time: migrations/, config/,
# examples/templates/) are vendored under vendor/, with the workspace settings
# they inherit in vendor/Cargo.toml, and the extension's path dependencies
# point there. The result builds with cargo alone (`gem install --local`).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
out="${1:-$here/pkg}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
gem="$stage/tasker"
mkdir -p "$gem/ext/tasker" "$gem/vendor/examples"

cp -r "$here/lib" "$here/tasker.gemspec" "$here/README.md" "$gem/"
rm -f "$gem"/lib/tasker/*.so
cp -r "$here/ext/tasker/src" "$here/ext/tasker/extconf.rb" "$here/ext/tasker/Cargo.lock" "$gem/ext/tasker/"
sed -e 's#path = "../../../abi"#path = "../../vendor/abi"#' \
    -e 's#path = "../../../engine"#path = "../../vendor/engine"#' \
    "$here/ext/tasker/Cargo.toml" > "$gem/ext/tasker/Cargo.toml"
grep -q 'vendor/abi' "$gem/ext/tasker/Cargo.toml" || { echo "vendoring: abi path not rewritten" >&2; exit 1; }
grep -q 'vendor/engine' "$gem/ext/tasker/Cargo.toml" || { echo "vendoring: engine path not rewritten" >&2; exit 1; }

# The crates, without tests and build outputs.
for crate in abi engine; do
  mkdir -p "$gem/vendor/$crate"
  (cd "$root/$crate" && cp -r Cargo.toml src "$gem/vendor/$crate/" \
    && for extra in build.rs cbindgen.toml examples; do [ -e "$extra" ] && cp -r "$extra" "$gem/vendor/$crate/"; done; true)
done
cp -r "$root/migrations" "$root/config" "$gem/vendor/"
cp -r "$root/examples/templates" "$gem/vendor/examples/"
# Their workspace: the root manifest's settings, with just these two members.
sed -e 's#^members = .*#members = ["abi", "engine"]#' "$root/Cargo.toml" > "$gem/vendor/Cargo.toml"
grep -q '^members = \["abi", "engine"\]' "$gem/vendor/Cargo.toml" || { echo "vendoring: workspace members not rewritten" >&2; exit 1; }

(cd "$gem" && gem build tasker.gemspec --output "$out/tasker.gem" >/dev/null)
version="$(ruby -r "$here/lib/tasker/version.rb" -e 'print Tasker::VERSION')"
mv "$out/tasker.gem" "$out/tasker-$version.gem"
echo "$out/tasker-$version.gem"
