#!/usr/bin/env bash
# Runs the C tests and examples against PostgreSQL, each program on a fresh
# database: every test linked against the shared and the static library, then
# under valgrind (leaks are errors), then the examples (a worker in the
# background, the client in front, SIGTERM) under valgrind too, and the lines
# their handlers logged (tasker_step_log) found in tasker.step_logs.
#
#   bindings-c/run-tests.sh        (after `make -C bindings-c`)
# Env: TASKER_TEST_PG (server URL without database, default
# postgres://postgres@127.0.0.1:5432), PROFILE (debug).
set -euo pipefail
cd "$(dirname "$0")"
PROFILE=${PROFILE:-debug}
BUILD=build/$PROFILE
PG=${TASKER_TEST_PG:-postgres://postgres@127.0.0.1:5432}
export PGOPTIONS="-c client_min_messages=warning"
VALGRIND=(valgrind --leak-check=full --errors-for-leak-kinds=all --error-exitcode=99 --quiet --num-callers=60 --suppressions=valgrind.supp)

# Databases are named tasker_c_<test>_<this shell's pid>. fresh_db runs in a
# command substitution (a subshell), so cleanup finds them by name.
fresh_db() {
    local name="tasker_c_$1_$$"
    psql "$PG/postgres" -qX -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
    echo "$PG/$name"
}
cleanup() {
    local db
    for db in $(psql "$PG/postgres" -qXAt -c "SELECT datname FROM pg_database WHERE datname LIKE 'tasker\_c\_%\_$$'" 2>/dev/null); do
        psql "$PG/postgres" -qX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

run() { # label, command...
    local label=$1
    shift
    local start=$SECONDS
    if ! "$@"; then
        echo "FAILED: $label" >&2
        exit 1
    fi
    echo "  passed: $label ($((SECONDS - start)) s)"
}

echo "C tests ($PROFILE)"
n=0
for link in shared static; do
    for t in "test_misuse" "test_handlers push" "test_handlers pull"; do
        n=$((n + 1))
        set -- $t
        TASKER_TEST_DATABASE_URL=$(fresh_db "t$n") run "$link: $t" "$BUILD/$link/$1" ${2:-}
    done
done
# Under valgrind, the three at once (each on its own database): valgrind runs a
# program's threads one at a time, so one run keeps one core busy.
pids=() labels=() outs=()
for t in "test_misuse" "test_handlers push" "test_handlers pull"; do
    n=$((n + 1))
    set -- $t
    out=$(mktemp)
    TASKER_TEST_DATABASE_URL=$(fresh_db "t$n") run "valgrind: $t" "${VALGRIND[@]}" "$BUILD/shared/$1" ${2:-} >"$out" 2>&1 &
    pids+=("$!") labels+=("valgrind: $t") outs+=("$out")
done
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        cat "${outs[$i]}" >&2
        echo "FAILED: ${labels[$i]}" >&2
        exit 1
    fi
    cat "${outs[$i]}"
    rm -f "${outs[$i]}"
done

# The examples: a worker serving in the background, the client creating and
# checking tasks, then SIGTERM: the worker must stop cleanly with no leak.
for worker in push_worker pull_worker; do
    n=$((n + 1))
    url=$(fresh_db "e$n")
    log=$(mktemp)
    DATABASE_URL=$url "${VALGRIND[@]}" "$BUILD/shared/$worker" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do grep -q serving "$log" && break; sleep 0.1; done
    DATABASE_URL=$url run "valgrind: $worker + client" "${VALGRIND[@]}" "$BUILD/shared/client" 5 60000
    kill -TERM "$pid"
    if ! wait "$pid"; then
        echo "FAILED: $worker did not stop cleanly:" >&2
        cat "$log" >&2
        exit 1
    fi
    echo "  passed: $worker stopped cleanly on SIGTERM, no leaks"
    # Every c.compute call logged a line (tasker_step_log): the worker stored
    # them with their attempts (5 diamonds of 4 steps).
    logged=$(psql "$url" -qXAt -c "SELECT count(*) FROM tasker.step_logs, jsonb_array_elements(lines) l
                                    WHERE l->>'level' = 'info' AND l->>'message' LIKE 'c.compute: %'")
    if [ "$logged" -lt 20 ]; then
        echo "FAILED: $worker: $logged c.compute lines in tasker.step_logs, expected 20" >&2
        exit 1
    fi
    echo "  passed: $worker: its handlers' log lines are in tasker.step_logs ($logged)"
    rm -f "$log"
done
echo "C tests: all passed"
