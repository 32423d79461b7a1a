#!/usr/bin/env bash
# Fuzzes the admin API with schemathesis against the spec it serves at
# /openapi.json: zero 5xx responses, zero responses that violate the spec.
#
# Needs a built `tasker` (cargo build), PostgreSQL at DATABASE_URL where the
# user may CREATE DATABASE, and python3 with venv. Installs schemathesis into
# a virtualenv (FUZZ_VENV, default /tmp/tasker-fuzz-venv) on first use.
# Tunables: FUZZ_MAX_EXAMPLES (per operation, default 30), FUZZ_PORT (18080).
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
tasker="${CARGO_TARGET_DIR:-target}/debug/tasker"
venv="${FUZZ_VENV:-/tmp/tasker-fuzz-venv}"
port="${FUZZ_PORT:-18080}"
base="http://127.0.0.1:${port}"
db=tasker_fuzz
# TASKER_* variables are configuration keys; keep the caller's out of it.
unset TASKER_CONFIG_DIR
export TASKER_ENV=test
export TASKER_DATABASE__URL="${DATABASE_URL%/*}/${db}"
export TASKER_WEB__BIND="127.0.0.1:${port}"

[ -x "$tasker" ] || { echo "no tasker binary at $tasker (run cargo build)" >&2; exit 2; }

if [ ! -x "$venv/bin/st" ]; then
  echo "== installing schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'schemathesis>=4,<5'
fi
"$venv/bin/st" --version

server_pid=
scratch="$(mktemp -d /tmp/tasker-fuzz.XXXXXX)"
cleanup() {
  rm -rf "$scratch"
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS ${db} WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

echo "== fresh database ${db}"
psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS ${db} WITH (FORCE)" -c "CREATE DATABASE ${db}"
"$tasker" migrate
key="$("$tasker" apikey create fuzz --permissions admin | sed -n 2p | tr -d '[:space:]')"
[ -n "$key" ] || { echo "could not create an API key" >&2; exit 1; }

echo "== server on ${base}"
log="$(mktemp /tmp/tasker-fuzz-server.XXXXXX.log)"
"$tasker" server >"$log" 2>&1 &
server_pid=$!
for _ in $(seq 1 60); do
  curl -fsS "${base}/health/ready" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "${base}/health/ready" >/dev/null || { cat "$log" >&2; exit 1; }

# Register the example templates through the API (works whether or not the
# CLI's `template apply` talks to the database directly).
for f in examples/templates/*.yaml; do
  code="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "${base}/v1/templates" \
    -H "Authorization: Bearer ${key}" -H 'Content-Type: application/yaml' --data-binary "@${f}")"
  case "$code" in 200|201) ;; *) echo "registering $f: HTTP $code" >&2; exit 1 ;; esac
done

# Real resources for the second pass: a diamond task (no worker runs, so its
# steps stay pending and the state-changing routes meet real 409s).
task_id="$(curl -fsS -X POST "${base}/v1/tasks" -H "Authorization: Bearer ${key}" \
  -H 'Content-Type: application/json' \
  -d '{"namespace":"demo","name":"diamond","context":{"value":3}}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["task_id"])')"
queue="$(curl -fsS "${base}/v1/queues" -H "Authorization: Bearer ${key}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["queues"][0]["queue_name"])')"
config="$(mktemp /tmp/tasker-fuzz.XXXXXX.toml)"
cat >"$config" <<TOML
[parameters]
"path.id" = "${task_id}"
"path.step" = "join"
"path.namespace" = "demo"
"path.name" = "diamond"
"path.version" = "latest"
"path.queue" = "${queue}"
TOML

status=0
fuzz() {
  local label=$1; shift
  echo "== schemathesis: ${label}"
  local t0=$SECONDS rc=0
  # /v1/tasks/{id}/events is a Server-Sent-Events stream that stays open
  # until the task ends: a fuzzer cannot read it to the end. Its 200, 400,
  # 401, 403 and 404 are covered in engine/api/tests/suite/api.rs.
  # Run from a scratch directory: schemathesis keeps a cache in its cwd.
  (cd "$scratch" && "$venv/bin/st" "$@" run "${base}/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --header "Authorization: Bearer ${key}" \
    --max-examples "${FUZZ_MAX_EXAMPLES:-30}" \
    --workers 1 \
    --request-timeout 10 \
    --exclude-path '/v1/tasks/{id}/events' \
    --suppress-health-check all \
    --no-shrink) \
    || rc=$?
  echo "schemathesis (${label}) took $((SECONDS - t0))s, exit ${rc}"
  [ "$rc" -eq 0 ] || status=$rc
}
# Pass 1: generated ids (malformed, unknown). Pass 2: the real task above.
fuzz "generated ids"
fuzz "real task ${task_id}" --config-file "$config"
rm -f "$config"
if [ "$status" -ne 0 ]; then
  echo "== server log (tail)"
  tail -n 50 "$log"
fi
rm -f "$log"
exit "$status"
