#!/usr/bin/env bash
# Installs and starts what the test suite needs, on a fresh machine of this
# kind (Debian 12 with rustup, CPython and PostgreSQL 15): idempotent, quick
# when everything is there. scripts/test.sh runs it first; run it alone to
# prepare a machine.
#
#   Debian packages  ruby-dev ruby-rspec rake (the gem), clang (libclang for
#                    the Ruby extension's bindgen), lld wasi-libc
#                    libclang-rt-14-dev-wasm32 (with clang: the C WASM guests),
#                    gcc g++ make, valgrind and
#                    libcjson-dev, pkg-config (libtasker's C examples and tests), curl and
#                    python3-venv (the API fuzz run, the Python package),
#                    nodejs/npm when absent (the JavaScript WASM guest),
#                    chromium and chromium-driver (the dashboard's browser
#                    test, tests/tests/ui.rs),
#                    the PostgreSQL client and server when absent
#   rustup           rustfmt, clippy, the wasm32-wasip2 target
#   PostgreSQL       started when nothing answers on 127.0.0.1:5432
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in ruby-dev ruby-rspec rake clang lld wasi-libc libclang-rt-14-dev-wasm32 gcc g++ make \
    valgrind libcjson-dev pkg-config curl python3-venv chromium chromium-driver; do
  installed "$pkg" || need+=("$pkg")
done
command -v psql >/dev/null || need+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# Node.js may come from elsewhere than Debian (its npm then conflicts with
# Debian's): install Debian's only when there is none.
command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "== setup: apt-get install ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}"
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "== setup: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
