#!/usr/bin/env bash
# The polyglot demo: prices ORDERS orders (default 20) with the template
# order_pricing.yaml, whose steps run in five runtimes, each runtime's worker
# its own process:
#
#   tasker server                                  orchestrator + admin API
#   tasker worker --namespace polyglot --pool wasm WASM components (Rust, Python, JS, C guests)
#   python worker.py                               order.subtotal  (pool python)
#   ruby worker.rb                                 order.shipping  (pool ruby)
#   worker.c on libtasker                          order.tax       (pool c)
#
#   examples/polyglot/run.sh [ORDERS]
#
# It builds what is missing first (examples/polyglot/prepare.sh: the tasker
# binary, the WASM guests, the Python package in a virtualenv, the Ruby
# extension, the C worker), then starts everything, uploads the components,
# registers the template, shows `tasker worker list`, creates the orders,
# follows the first with `tasker task watch` and all of them on a progress
# line, prints and checks every amount, and stops every process on exit.
#
# Database: POLYGLOT_DATABASE_URL if set (used as it is); otherwise a
# dedicated database `tasker_polyglot`, dropped and created again, on the
# server of DATABASE_URL, else on the local default server
# postgres://postgres@127.0.0.1:5432. API port: POLYGLOT_PORT (default 8787).
# Logs of every process: $CARGO_TARGET_DIR/polyglot/logs/. PROFILE=release
# builds the tasker binary optimized (default: the debug build the test suite
# uses). Needs cargo, python3, ruby, cc, cJSON and psql.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
orders="${1:-20}"
[[ "$orders" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [ORDERS]" >&2; exit 2; }
# TASKER_* variables are configuration keys of every tasker process: keep the
# caller's environment and configuration directory choices out.
unset TASKER_ENV TASKER_CONFIG_DIR
t0=$(date +%s%N)
say() {
  local ds=$(( ($(date +%s%N) - t0) / 100000000 ))
  printf '\n\033[1m== [%3d.%d s] %s\033[0m\n' $((ds / 10)) $((ds % 10)) "$*"
}

say "building what is missing"
# shellcheck source=prepare.sh
. examples/polyglot/prepare.sh
polyglot_prepare
tasker="$POLYGLOT_TASKER"

# ---------------------------------------------------------------- database
if [ -n "${POLYGLOT_DATABASE_URL:-}" ]; then
  db="$POLYGLOT_DATABASE_URL"
else
  server="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  server="${server%/*}"
  psql "$server/postgres" -qXtAc 'SELECT 1' >/dev/null 2>&1 || {
    echo "no PostgreSQL answers at $server: start one, or set POLYGLOT_DATABASE_URL" >&2
    exit 1
  }
  db="$server/tasker_polyglot"
  say "database: $db (created afresh)"
  PGOPTIONS='--client-min-messages=warning' psql "$server/postgres" -qX \
    -c "DROP DATABASE IF EXISTS tasker_polyglot WITH (FORCE)" -c "CREATE DATABASE tasker_polyglot"
fi

# ---------------------------------------------------------------- processes
port="${POLYGLOT_PORT:-8787}"
logs="$polyglot_out/logs"
mkdir -p "$logs"
export TASKER_DATABASE__URL="$db" TASKER_WEB__BIND="127.0.0.1:$port" TASKER_CLIENT__URL="http://127.0.0.1:$port"
export TASKER_TELEMETRY__LOG_LEVEL="${TASKER_TELEMETRY__LOG_LEVEL:-warn}"
pids=()
names=()
stop_all() {
  local rc=$? i
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    echo
    echo "== stopping ${#pids[@]} processes (logs: $logs)"
    for i in "${!pids[@]}"; do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
    for _ in $(seq 100); do
      local alive=0
      for i in "${!pids[@]}"; do kill -0 "${pids[$i]}" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.1
    done
    for i in "${!pids[@]}"; do
      if kill -0 "${pids[$i]}" 2>/dev/null; then
        echo "   ${names[$i]} (pid ${pids[$i]}) did not stop: SIGKILL"
        kill -KILL "${pids[$i]}" 2>/dev/null || true
      fi
    done
    wait 2>/dev/null || true
  fi
  exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT TERM
# start NAME LOG COMMAND...: runs a process in the background, its output in logs/LOG.
start() {
  local name=$1 log=$2; shift 2
  "$@" >"$logs/$log" 2>&1 &
  pids+=($!)
  names+=("$name")
  printf '   %-40s pid %-7s log %s\n' "$name" "$!" "$logs/$log"
}

say "migrate, an API key, tasker server on 127.0.0.1:$port"
"$tasker" migrate >/dev/null
TASKER_CLIENT__API_KEY="$("$tasker" apikey create "polyglot-demo-$$" --permissions admin 2>"$logs/apikey.log" | grep '^tk_')" \
  || { cat "$logs/apikey.log" >&2; exit 1; }
export TASKER_CLIENT__API_KEY
start "tasker server" server.log "$tasker" server
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$logs/server.log" >&2; echo "tasker server exited (port $port taken? set POLYGLOT_PORT)" >&2; exit 1; }
  sleep 0.1
done

say "uploading the WASM components (one math.compute handler, built from four languages)"
for guest in math_rust math_py math_js math_c; do
  "$tasker" component upload "$POLYGLOT_WASM_DIR/$guest.wasm" --name "poly.$guest" --version 1.0.0
done

say "starting one worker process per runtime"
# A 1 s registry heartbeat (default 5 s), so that `tasker worker list` is current.
export TASKER_WORKER__REGISTRY_HEARTBEAT_SECONDS=1
export POLYGLOT_WORKER_CONFIG=$'[worker]\nregistry_heartbeat_seconds = 1'
start "tasker worker --pool wasm (Rust host)" wasm-worker.log \
  "$tasker" worker --namespace polyglot --pool wasm
# The native workers read DATABASE_URL (the bindings' default).
start "python worker.py" python-worker.log \
  env DATABASE_URL="$db" "$POLYGLOT_PYTHON" examples/polyglot/worker.py
start "ruby worker.rb" ruby-worker.log \
  env DATABASE_URL="$db" ruby -I "$POLYGLOT_RUBY_LIB" examples/polyglot/worker.rb
start "worker.c (libtasker)" c-worker.log \
  env DATABASE_URL="$db" "$POLYGLOT_C_WORKER"
live_workers() {
  "$tasker" worker list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["workers"]))'
}
for _ in $(seq 600); do
  [ "$(live_workers)" -ge 4 ] && break
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null || { tail -n 20 "$logs"/*.log >&2; echo "${names[$i]} exited" >&2; exit 1; }
  done
  sleep 0.1
done
"$tasker" worker list

say "registering the template (a step no live worker serves would be named here)"
"$tasker" template apply examples/polyglot/order_pricing.yaml

inputs="$polyglot_out/orders.jsonl"
ids_file="$polyglot_out/task-ids.txt"
python3 examples/polyglot/orders.py "$orders" >"$inputs"
since="$(psql "$db" -qXtAc 'SELECT now()')"
create() { "$tasker" task create --namespace polyglot --name order_pricing --context "$1"; }
first="$(create "$(head -1 "$inputs")")"
echo "$first" >"$ids_file"
say "the first order, live: tasker task watch $first"
"$tasker" task watch "$first" || true

if [ "$orders" -gt 1 ]; then
  say "the other $((orders - 1)) orders: created one by one while they run (completed/created per step)"
  ( tail -n +2 "$inputs" | while IFS= read -r input; do create "$input" >>"$ids_file"; done ) \
    2>"$logs/create.log" &
  pids+=($!)
  names+=("creating orders")
fi
labels="VALUES (1, 'subtotal', 'py'), (2, 'shipping', 'rb'), (3, 'pre_tax', 'wasm:rs'), (4, 'tax', 'c'),
               (5, 'total', 'wasm:py'), (6, 'points', 'wasm:js'), (7, 'charged', 'wasm:c')"
progress_sql="
  SELECT string_agg(format('%s[%s] %s/%s', l.name, l.label, coalesce(s.done, 0), coalesce(s.total, 0)), '  ' ORDER BY l.ord)
    FROM ($labels) AS l(ord, name, label)
    LEFT JOIN (SELECT name, count(*) FILTER (WHERE state = 'complete') AS done, count(*) AS total
                 FROM tasker.steps
                WHERE task_id IN (SELECT id FROM tasker.tasks WHERE namespace = 'polyglot' AND created_at >= '$since')
                GROUP BY name) s ON s.name = l.name"
tasks_sql="SELECT count(*) FILTER (WHERE state IN ('complete','error','blocked_by_failures','cancelled')) || ' ' ||
                  count(*) FILTER (WHERE state = 'complete')
             FROM tasker.tasks WHERE namespace = 'polyglot' AND created_at >= '$since'"
deadline=$(( $(date +%s) + 120 ))
while :; do
  line="$(psql "$db" -qXtAc "$progress_sql")"
  read -r finished complete <<<"$(psql "$db" -qXtAc "$tasks_sql")"
  if [ -t 1 ]; then printf '\r\033[K   %s | orders complete %s/%s' "$line" "$complete" "$orders"
  else echo "   $line | orders complete $complete/$orders"; fi
  [ "$finished" -ge "$orders" ] && break
  [ "$(date +%s)" -lt "$deadline" ] || { echo; echo "orders still running after 120 s" >&2; break; }
  sleep 0.25
done
echo

say "results in cents (and the language that computed each step, from its result's \`lang\`)"
mapfile -t ids <"$ids_file"
for id in "${ids[@]}"; do "$tasker" task get "$id" --json; done >"$polyglot_out/results.json"
checked=0
python3 examples/polyglot/orders.py --check "$inputs" "$polyglot_out/results.json" || checked=1

sleep 1.2  # one registry heartbeat: the counters below include the last steps
say "the workers after the run (done/failed: steps each one ran)"
"$tasker" worker list
"$tasker" queue stats || true
exit "$checked"
