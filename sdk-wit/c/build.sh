#!/usr/bin/env bash
# Builds a tasker step handler written in C into a WASM component.
#
#   sdk-wit/c/build.sh -o OUT.wasm [CFLAG...] SOURCE.c...
#
# SOURCEs define `tasker_result tasker_handle(const tasker_context *ctx)`
# (tasker_guest.h). Arguments starting with `-` other than -o are passed to
# clang (-I, -D, -O...). The steps (README.md has them one by one):
#   1. tasker-componentize-c (componentize/, built once into
#      ${CARGO_TARGET_DIR:-target}/debug/) writes the wit-bindgen C bindings of
#      ../wit (world step-handler);
#   2. clang --target=wasm32-wasi links SOURCEs, the glue (tasker_guest.c,
#      tasker_json.c) and the bindings into a core module (reactor);
#   3. tasker-componentize-c turns it into a component with the WASI preview1
#      adapter.
# Needs Debian's clang lld wasi-libc libclang-rt-14-dev-wasm32 (scripts/setup.sh
# installs them) and cargo.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
CC="${CC_WASM:-clang}"

out="" sources=() cflags=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    -o*) out="${1#-o}"; shift ;;
    -*) cflags+=("$1"); shift ;;
    *) sources+=("$1"); shift ;;
  esac
done
if [ -z "$out" ] || [ ${#sources[@]} -eq 0 ]; then
  echo "usage: $0 -o OUT.wasm [CFLAG...] SOURCE.c..." >&2
  exit 2
fi

missing=()
for f in /usr/lib/wasm32-wasi/libc.a /usr/lib/llvm-14/lib/clang/14.0.6/lib/wasi/libclang_rt.builtins-wasm32.a; do
  [ -f "$f" ] || missing+=("$f")
done
command -v "$CC" >/dev/null || missing+=("$CC")
command -v wasm-ld >/dev/null || command -v wasm-ld-14 >/dev/null || missing+=(wasm-ld)
if [ ${#missing[@]} -gt 0 ]; then
  echo "$0: missing ${missing[*]}: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
  exit 1
fi

# 1. The tool, built when absent or older than its sources (no cargo call, and
#    so no wait on a busy target dir, when it is current).
tool="$target/debug/tasker-componentize-c"
if [ ! -x "$tool" ] || [ -n "$(find "$here/componentize/src" "$here/componentize/Cargo.toml" \
    "$here/componentize/Cargo.lock" -newer "$tool" -type f | head -1)" ]; then
  CARGO_TARGET_DIR="$target" cargo build --locked -q --manifest-path "$here/componentize/Cargo.toml"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$tool" bindings "$here/../wit" "$work/bindings"

# 2. A core module: a reactor (no main; the host calls the export), a 1 MiB
#    stack placed first so an overflow traps instead of overwriting data.
"$CC" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra \
  -I "$here" -I "$work/bindings" "${cflags[@]}" \
  "${sources[@]}" "$here/tasker_guest.c" "$here/tasker_json.c" \
  "$work/bindings/step_handler.c" "$work/bindings/step_handler_component_type.o" \
  -Wl,--stack-first -Wl,-z,stack-size=1048576 -Wl,--strip-debug \
  -o "$work/module.wasm"

# 3. The component.
mkdir -p "$(dirname "$out")"
"$tool" component "$work/module.wasm" -o "$out"
echo "wrote $out ($(stat -c %s "$out") bytes)"
