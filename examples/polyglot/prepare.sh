# Builds what the polyglot example needs and is missing, and sets (exports):
#   POLYGLOT_TASKER    the `tasker` binary ($CARGO_TARGET_DIR/$PROFILE/tasker)
#   POLYGLOT_PYTHON    a Python with the `tasker` package installed
#   POLYGLOT_RUBY_LIB  a directory for `ruby -I`: the gem's lib with its compiled extension
#   POLYGLOT_C_WORKER  the C worker (worker.c) linked against libtasker
#   POLYGLOT_WASM_DIR  the WASM guests (math_{rust,py,js,c}.wasm)
# Sourced by run.sh and scripts/test-polyglot.sh (`. examples/polyglot/prepare.sh`).
#
# Reuses what the suite built when it is up to date: the Python virtualenv of
# scripts/test-python.sh ($CARGO_TARGET_DIR/python/test-venv), the extension
# bindings-ruby/scripts/test.sh leaves in bindings-ruby/lib/tasker/, the WASM
# guests of scripts/build-wasm-examples.sh. PROFILE=release builds the tasker
# binary and libtasker optimized (default debug); REBUILD=1 rebuilds the
# Python package, the Ruby extension and the WASM guests even when present.
# Needs: cargo, python3 (venv), ruby (with its headers), cc, cJSON.

polyglot_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
polyglot_target="${CARGO_TARGET_DIR:-$polyglot_root/target}"
case "$polyglot_target" in /*) ;; *) polyglot_target="$polyglot_root/$polyglot_target" ;; esac
polyglot_profile="${PROFILE:-debug}"
polyglot_out="$polyglot_target/polyglot"
mkdir -p "$polyglot_out"

# Whether $1 is missing, or older than any file under the other arguments.
polyglot_stale() {
  local result=$1; shift
  [ "${REBUILD:-0}" = 1 ] && return 0
  [ -e "$result" ] || return 0
  [ -n "$(cd "$polyglot_root" && find "$@" -newer "$result" -type f 2>/dev/null | head -1)" ]
}
polyglot_say() { echo "== polyglot: $*" >&2; }

# The crates under the Python and Ruby extensions (a change there means a rebuild).
polyglot_engine_sources=(abi/src abi/Cargo.toml engine/model/src engine/config/src engine/store/src
  engine/notify/src engine/worker/src engine/orchestrator/src migrations config/tasker Cargo.lock)

polyglot_prepare() {

  polyglot_say "the tasker binary ($polyglot_profile)"
  # Debug: the binary as the test suite's `cargo test` builds it (a tasker-cli
  # test needs it; `cargo build -p tasker-cli` would resolve other features
  # and compile the engine again).
  if [ "$polyglot_profile" = release ]; then
    (cd "$polyglot_root" && cargo build -q --locked -p tasker-cli --release) || return 1
  else
    (cd "$polyglot_root" && cargo test -q --locked --no-run --test config_env) || return 1
  fi
  export POLYGLOT_TASKER="$polyglot_target/$polyglot_profile/tasker"

  export POLYGLOT_WASM_DIR="$polyglot_target/wasm-examples"
  local missing=0 guest
  for guest in rust py js c; do [ -f "$POLYGLOT_WASM_DIR/math_$guest.wasm" ] || missing=1; done
  if [ "$missing" = 1 ] || [ "${REBUILD:-0}" = 1 ]; then
    polyglot_say "WASM guests (scripts/build-wasm-examples.sh)"
    (cd "$polyglot_root" && CARGO_TARGET_DIR="$polyglot_target" ./scripts/build-wasm-examples.sh) >&2 || return 1
  fi

  polyglot_say "libtasker and the C worker"
  make -s -C "$polyglot_root/bindings-c" lib PROFILE="$polyglot_profile" CARGO_TARGET_DIR="$polyglot_target" >&2 || return 1
  local libdir="$polyglot_target/$polyglot_profile"
  export POLYGLOT_C_WORKER="$polyglot_out/c_worker_$polyglot_profile"
  ${CC:-cc} -std=c11 -Wall -Wextra -Werror -O2 -I"$polyglot_root/bindings-c/include" \
    -o "$POLYGLOT_C_WORKER" "$polyglot_root/examples/polyglot/worker.c" \
    -L"$libdir" -ltasker -Wl,-rpath,"$libdir" -lcjson -lpthread || return 1

  # Python: the suite's test virtualenv (scripts/test-python.sh makes it the same way).
  local venv="$polyglot_target/python/test-venv" so
  so="$(ls "$venv"/lib/python3*/site-packages/tasker/_tasker*.so 2>/dev/null | head -1)"
  if ! "$venv/bin/python" -c 'import tasker' >/dev/null 2>&1 \
      || polyglot_stale "$so" bindings-python/src bindings-python/python bindings-python/Cargo.toml \
                         "${polyglot_engine_sources[@]}"; then
    polyglot_say "the Python package into $venv (maturin, release)"
    "$venv/bin/python" -m pip --version >/dev/null 2>&1 || {
      rm -rf "$venv"
      "${PYTHON:-python3}" -m venv "$venv" || return 1
    }
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.16,<2" >&2 || return 1
    (cd "$polyglot_root" && CARGO_TARGET_DIR="$polyglot_target" PATH="$venv/bin:$PATH" \
      "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation \
      --force-reinstall --no-deps ./bindings-python) >&2 || return 1
  fi
  export POLYGLOT_PYTHON="$venv/bin/python"

  # Ruby: bindings-ruby/lib with its extension. The one bindings-ruby/scripts/test.sh
  # leaves there when fresh, else a release build copied into a lib of our own.
  local ext="$polyglot_root/bindings-ruby/lib/tasker/tasker_rb.so"
  local ruby_sources=(bindings-ruby/ext/tasker/src bindings-ruby/ext/tasker/Cargo.toml "${polyglot_engine_sources[@]}")
  if [ "${REBUILD:-0}" != 1 ] && ! polyglot_stale "$ext" "${ruby_sources[@]}"; then
    export POLYGLOT_RUBY_LIB="$polyglot_root/bindings-ruby/lib"
  else
    local lib="$polyglot_out/ruby-lib"
    if polyglot_stale "$lib/tasker/tasker_rb.so" "${ruby_sources[@]}"; then
      polyglot_say "the Ruby extension (cargo, release)"
      (cd "$polyglot_root" && RUBY="$(ruby -e 'print RbConfig.ruby')" CARGO_TARGET_DIR="$polyglot_target" \
        cargo build -q --release --locked --manifest-path bindings-ruby/ext/tasker/Cargo.toml) >&2 || return 1
      mkdir -p "$lib/tasker"
      cp "$polyglot_target/release/libtasker_rb.so" "$lib/tasker/tasker_rb.so.new"
      mv "$lib/tasker/tasker_rb.so.new" "$lib/tasker/tasker_rb.so"
    fi
    # The Ruby sources as they are now, next to the extension.
    (cd "$polyglot_root/bindings-ruby/lib" && find . -name '*.rb' -exec cp --parents {} "$lib/" \;)
    export POLYGLOT_RUBY_LIB="$lib"
  fi
  polyglot_say "ready: tasker=$POLYGLOT_TASKER python=$POLYGLOT_PYTHON ruby -I $POLYGLOT_RUBY_LIB c=$POLYGLOT_C_WORKER"
}
