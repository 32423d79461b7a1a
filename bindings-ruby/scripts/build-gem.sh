#!/usr/bin/env bash
# Builds tasker-<version>.gem into OUT_DIR (default: bindings-ruby/pkg).
#
# The packaging step. In the repository the extension (ext/tasker) is a member
# of the root workspace and uses its crates and its one Cargo.lock. An
# installed gem is built from its own directory, where those do not exist, so
# this script stages a self-contained copy and builds the gem from it:
#   ext/tasker/vendor/  the crates the extension needs (abi, engine/{model,
#                       config,store,notify,worker,orchestrator}, wasm-host for
#                       the optional `wasm` feature) and what they embed at
#                       compile time (migrations/, config/, sdk-wit/wit/), at
#                       the same relative places;
#   ext/tasker/Cargo.toml  the extension's manifest plus a [workspace] of the
#                       vendored crates (the root's settings, paths rewritten);
#   ext/tasker/Cargo.lock  the root lock, pruned to what the gem builds.
# Nothing is vendored inside the repository itself.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
out="${1:-$here/pkg}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$(mktemp -d "${TMPDIR:-/tmp}/tasker-gem.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

# The gem's own files, as the gemspec lists them.
cp -p "$here/tasker.gemspec" "$here/README.md" "$stage/"
cp -rp "$here/lib" "$stage/"
rm -f "$stage"/lib/tasker/*.so
mkdir -p "$stage/ext/tasker"
cp -p "$here/ext/tasker/extconf.rb" "$stage/ext/tasker/"
cp -rp "$here/ext/tasker/src" "$stage/ext/tasker/"

vendor="$stage/ext/tasker/vendor"
crates=(abi wasm-host engine/model engine/config engine/store engine/notify engine/worker engine/orchestrator)
for crate in "${crates[@]}"; do
  mkdir -p "$vendor/$crate"
  for part in Cargo.toml build.rs cbindgen.toml src; do
    if [ -e "$root/$crate/$part" ]; then cp -rp "$root/$crate/$part" "$vendor/$crate/"; fi
  done
done
mkdir -p "$vendor/sdk-wit"
cp -rp "$root/migrations" "$root/config" "$vendor/"
cp -rp "$root/sdk-wit/wit" "$vendor/sdk-wit/"

python3 - "$root/Cargo.toml" "$here/ext/tasker/Cargo.toml" "$stage/ext/tasker/Cargo.toml" "${crates[@]}" <<'PY'
import re, sys
root_manifest, ext_manifest, dest, *crates = sys.argv[1:]
root = open(root_manifest).read()
# Drop the root's [workspace] table (members, default-members, exclude).
root = re.sub(r'^\[workspace\]\n(?:(?!^\[).*\n)*', '', root, flags=re.M)
lines = []
for line in root.splitlines():
    m = re.match(r'^(tasker-[a-z-]+) = \{ path = "([^"]+)" \}$', line)
    if m:
        if m.group(2) not in crates:
            continue  # a crate the gem does not build
        line = f'{m.group(1)} = {{ path = "vendor/{m.group(2)}" }}'
    lines.append(line)
members = ", ".join(f'"vendor/{c}"' for c in crates)
# The vendored crates ship without their tests: drop their dev-dependencies
# (the test kit is not in the gem).
import os
for c in crates:
    path = os.path.join(os.path.dirname(dest), "vendor", c, "Cargo.toml")
    text = open(path).read()
    text = re.sub(r'^\[dev-dependencies\]\n(?:(?!^\[).*\n)*', '', text, flags=re.M)
    open(path, "w").write(text)
ext = open(ext_manifest).read()
open(dest, "w").write(
    ext
    + "\n# Added by scripts/build-gem.sh: the gem's own workspace of vendored crates.\n"
    + f'[workspace]\nresolver = "2"\nmembers = [{members}]\n'
    + "\n".join(lines) + "\n")
PY

# The root lock, pruned to the gem's workspace (versions stay as pinned).
cp -p "$root/Cargo.lock" "$stage/ext/tasker/Cargo.lock"
(cd "$stage/ext/tasker" && { cargo update --workspace --offline -q 2>/dev/null || cargo update --workspace -q; })

version="$(ruby -r "$here/lib/tasker/version.rb" -e 'print Tasker::VERSION')"
(cd "$stage" && gem build tasker.gemspec --output "$out/tasker-$version.gem" >/dev/null 2>&1) \
  || (cd "$stage" && gem build tasker.gemspec --output "$out/tasker-$version.gem")
echo "$out/tasker-$version.gem"
