#!/usr/bin/env bash
# The Python package (bindings-python/): builds it once, installs it the way a
# user does and tests it against a real PostgreSQL.
#
# 1. Build: `maturin build` and `maturin sdist` (in a build virtualenv with
#    maturin) make the abi3 wheel (CPython 3.9+) and the sdist (completed by
#    bindings-python/complete_sdist.py) into $CARGO_TARGET_DIR/python/dist;
#    cargo's output goes to $CARGO_TARGET_DIR. PROFILE=release (the default,
#    what `pip install` builds) or PROFILE=debug: scripts/test.sh builds the
#    wheel unoptimized, reusing the debug artifacts libtasker's C build left
#    (23 s instead of 339 s of release compilation on 2 cores).
# 2. Smoke test: a fresh virtualenv, `pip install --no-index <the wheel>` with a
#    PATH holding nothing but the virtualenv (no cargo, no cc: installing
#    compiles nothing; the time is printed), then the example in
#    examples/python/ runs a diamond workflow against a fresh database.
# 3. pytest: unit tests and integration tests (each test makes and drops its
#    own database) with the same wheel installed in a test virtualenv.
#
# DATABASE_URL must point at a server where the user may CREATE DATABASE.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
admin_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${admin_url%/*}"
python="${PYTHON:-python3}"
case "${PROFILE:-release}" in
  release) profile=(--release) ;;
  debug) profile=(--profile dev) ;;
  *) echo "test-python.sh: PROFILE must be release or debug, not '$PROFILE'" >&2; exit 2 ;;
esac
venvs="$CARGO_TARGET_DIR/python"
mkdir -p "$venvs"
pip_quiet=(-q --disable-pip-version-check)

# A virtualenv reused between runs; made again when it no longer works (a
# venv's scripts name its absolute path, so a moved target directory breaks it).
reusable_venv() {
  "$1/bin/python" -m pip --version >/dev/null 2>&1 || {
    rm -rf "$1"
    "$python" -m venv "$1"
  }
}

echo "== python: build the wheel and the sdist (maturin, ${PROFILE:-release})"
build_venv="$venvs/build-venv"
reusable_venv "$build_venv"
"$build_venv/bin/python" -m pip install "${pip_quiet[@]}" "maturin>=1.16,<2"
dist="$venvs/dist"
rm -rf "$dist"
start=$SECONDS
# The wheel from the workspace itself (its Cargo.lock, its target directory);
# the sdist separately: `maturin build --sdist` would build the wheel from the
# unpacked sdist instead, a second, separate compilation.
(cd bindings-python && PATH="$build_venv/bin:$PATH" maturin build "${profile[@]}" --locked --out "$dist")
(cd bindings-python && PATH="$build_venv/bin:$PATH" maturin sdist --out "$dist" 2>&1 | grep -v "^warning: manifest has no\|^  |\|^  = note: see\|^From .cargo package")
"$build_venv/bin/python" bindings-python/complete_sdist.py "$dist"/tasker-*.tar.gz
wheel="$(ls "$dist"/tasker-*-abi3-*.whl)"
echo "built in $(( SECONDS - start )) s: $(cd "$dist" && ls)"

echo "== python: smoke test of the installed wheel (fresh virtualenv, no compiler on PATH)"
smoke="$venvs/smoke-venv"
rm -rf "$smoke"
"$python" -m venv "$smoke"
start=$EPOCHREALTIME
env -i PATH="$smoke/bin" HOME="$HOME" "$smoke/bin/pip" install "${pip_quiet[@]}" --no-index --no-deps "$wheel"
awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "installed in %.1f s\n", b - a }'
db="tasker_py_smoke_$$"
psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true' EXIT
(cd /tmp && "$smoke/bin/python" "$root/examples/python/run_example.py" "$server_url/$db")
psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
trap - EXIT

echo "== python: pytest"
test_venv="$venvs/test-venv"
reusable_venv "$test_venv"
"$test_venv/bin/python" -m pip install "${pip_quiet[@]}" "pytest>=8"
"$test_venv/bin/python" -m pip install "${pip_quiet[@]}" --no-index --no-deps --force-reinstall "$wheel"
# Run from the tests folder so `import tasker` finds the installed package,
# not the source tree.
(cd bindings-python/tests && TASKER_TEST_PG_URL="$admin_url" "$test_venv/bin/python" -m pytest -q -p no:cacheprovider .)
