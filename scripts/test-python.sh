#!/usr/bin/env bash
# The Python package (bindings-python/): installs it the way a user does and
# tests it against a real PostgreSQL.
#
# 1. Smoke test: a fresh virtualenv, `pip install ./bindings-python` (maturin
#    builds the abi3 wheel in release, in $CARGO_TARGET_DIR), then the example
#    in examples/python/ runs a diamond workflow against a fresh database.
# 2. pytest: unit tests and integration tests (each test makes and drops its
#    own database) with the package installed in a test virtualenv.
#
# DATABASE_URL must point at a server where the user may CREATE DATABASE.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
admin_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${admin_url%/*}"
python="${PYTHON:-python3}"
venvs="$CARGO_TARGET_DIR/python"
mkdir -p "$venvs"

echo "== python: smoke test of the installed package (fresh virtualenv)"
smoke="$venvs/smoke-venv"
rm -rf "$smoke"
"$python" -m venv "$smoke"
"$smoke/bin/pip" install -q --upgrade pip
"$smoke/bin/pip" install ./bindings-python
db="tasker_py_smoke_$$"
psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true' EXIT
(cd /tmp && "$smoke/bin/python" "$root/examples/python/run_example.py" "$server_url/$db")
psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
trap - EXIT

echo "== python: pytest"
test_venv="$venvs/test-venv"
# Reused between runs; made again when it no longer works (a venv's scripts
# name its absolute path, so a moved target directory breaks it).
"$test_venv/bin/python" -m pip --version >/dev/null 2>&1 || {
  rm -rf "$test_venv"
  "$python" -m venv "$test_venv"
}
"$test_venv/bin/python" -m pip install -q "maturin>=1.16,<2" "pytest>=8"
# The same build as above (cargo's cache in $CARGO_TARGET_DIR makes it quick).
PATH="$test_venv/bin:$PATH" "$test_venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall --no-deps ./bindings-python
# Run from the tests folder so `import tasker` finds the installed package,
# not the source tree.
(cd bindings-python/tests && TASKER_TEST_PG_URL="$admin_url" "$test_venv/bin/python" -m pytest -q -p no:cacheprovider .)
