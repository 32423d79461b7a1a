#!/usr/bin/env bash
# Builds the WASM guest examples into ${CARGO_TARGET_DIR:-target}/wasm-examples/:
#   math_rust.wasm noop_rust.wasm hostile_rust.wasm bad_import_rust.wasm  (Rust, wit-bindgen)
#   math_py.wasm                                                          (Python, componentize-py)
#   math_js.wasm                                                          (JavaScript, componentize-js)
#   math_c.wasm hostile_c.wasm                                            (C, clang + sdk-wit/c)
# `build-wasm-examples.sh rust` builds only the Rust ones (seconds; the tests need them).
# Installs what it needs on a fresh machine: the wasm32-wasip2 Rust target,
# componentize-py 0.25 in a venv (CPY_VENV, default /tmp/tasker-componentize-py),
# componentize-js 0.23 with npm (CJS_DIR, default /tmp/tasker-componentize-js),
# Debian's clang lld wasi-libc libclang-rt-14-dev-wasm32 for C (whose
# sdk-wit/c/componentize tool cargo builds once into the target dir).
# Built files are never committed. A Python/JS/C component is rebuilt only when
# its sources or the WIT changed.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
out="$target/wasm-examples"
mkdir -p "$out"

echo "== Rust guests (wasm32-wasip2)"
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
(cd examples/wasm && CARGO_TARGET_DIR="$target" cargo build --release --locked --target wasm32-wasip2 -q)
for crate in math noop hostile bad_import; do
  cp "$target/wasm32-wasip2/release/wasm_${crate}.wasm" "$out/${crate}_rust.wasm"
done
[ "$what" = rust ] && { ls -l "$out"; exit 0; }

# Whether $1 is missing or older than any of the other arguments (files or dirs).
stale() {
  local result=$1; shift
  [ -f "$result" ] || return 0
  [ -n "$(find "$@" -newer "$result" -type f 2>/dev/null | head -1)" ]
}

echo "== C guests (clang, wasi-libc, sdk-wit/c)"
need=()
for pkg in clang lld wasi-libc libclang-rt-14-dev-wasm32; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}"
fi
for guest in math hostile; do
  if stale "$out/${guest}_c.wasm" "examples/wasm/c/$guest.c" sdk-wit/c/*.[ch] sdk-wit/c/build.sh \
      sdk-wit/c/componentize/src sdk-wit/c/componentize/Cargo.lock sdk-wit/wit; then
    sdk-wit/c/build.sh -o "$out/${guest}_c.wasm" "examples/wasm/c/$guest.c"
  fi
done

echo "== Python guest (componentize-py)"
venv="${CPY_VENV:-/tmp/tasker-componentize-py}"
if [ ! -x "$venv/bin/componentize-py" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'componentize-py==0.25.*'
fi
if stale "$out/math_py.wasm" examples/wasm/python sdk-wit/wit; then
  (cd examples/wasm/python && "$venv/bin/componentize-py" -d ../../../sdk-wit/wit -w step-handler \
    componentize app -o "$out/math_py.wasm")
fi

echo "== JavaScript guest (componentize-js)"
cjs="${CJS_DIR:-/tmp/tasker-componentize-js}"
if [ ! -f "$cjs/node_modules/@bytecodealliance/componentize-js/package.json" ]; then
  command -v npm >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq nodejs npm; }
  mkdir -p "$cjs"
  (cd "$cjs" && { [ -f package.json ] || npm init -y >/dev/null; } \
    && npm install --no-audit --no-fund -q '@bytecodealliance/componentize-js@0.23')
fi
if stale "$out/math_js.wasm" examples/wasm/js sdk-wit/wit; then
  COMPONENTIZE_JS_DIR="$cjs" node examples/wasm/js/build.mjs "$out/math_js.wasm"
fi
ls -l "$out"
