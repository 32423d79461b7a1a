#!/usr/bin/env bash
# Copies the crates the extension needs into ext/tasker/vendor/ (gitignored):
# abi/, engine/ and wasm-host/ (sources only), and what they embed at compile
# time (migrations/, config/, examples/templates/, sdk-wit/wit/), at the same
# relative places.
#
# Both the repository build and the installed gem build the extension from
# this copy: an installed gem is built from its own directory, where the
# repository's crates do not exist, and because the copy sits inside the
# extension's own workspace (as members), cargo hashes it by its relative
# path: the repository build and the gem build are the same units (they share
# third-party artifacts; the engine recompiles when the other one built last,
# since its dep-info names the embedded files outside the crate by absolute path).
# Modification times are kept (cp -p), so an unchanged copy rebuilds nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
vendor="$here/ext/tasker/vendor"
rm -rf "$vendor.new"
mkdir -p "$vendor.new/examples"
for crate in abi engine wasm-host; do
  mkdir -p "$vendor.new/$crate"
  for part in Cargo.toml build.rs cbindgen.toml src examples; do
    if [ -e "$root/$crate/$part" ]; then cp -rp "$root/$crate/$part" "$vendor.new/$crate/"; fi
  done
done
cp -rp "$root/migrations" "$root/config" "$vendor.new/"
cp -rp "$root/examples/templates" "$vendor.new/examples/"
mkdir -p "$vendor.new/sdk-wit"
cp -rp "$root/sdk-wit/wit" "$vendor.new/sdk-wit/"
rm -rf "$vendor"
mv "$vendor.new" "$vendor"
