#!/usr/bin/env bash
# Flat cost (issue 18): does a database holding N finished tasks (default
# 1,000,000, with their steps, edges and audit rows) run workflows as fast as
# an empty one? Fills a scratch database in pure SQL, then runs the same
# `tasker bench` against an empty database and the full one, alternating
# (empty, full, empty, full), and prints per-step p50/p99, steps/s and the
# ratios full/empty.
#
#   scripts/bench-flat-cost.sh [N]            (N finished tasks, default 1000000)
#
# Environment: DATABASE_URL (a database on the server to use, default
# postgres://postgres@127.0.0.1:5432/postgres; the user needs CREATEDB),
# TASKER (the tasker binary, default target/release/tasker, built if missing),
# BATCH (tasks per INSERT, default 100000), BENCH_ARGS (extra `tasker bench`
# arguments, e.g. "--diamonds 1000"). The two databases, tasker_flat_empty_<pid>
# and tasker_flat_full_<pid>, are dropped on exit.
set -euo pipefail

N=${1:-1000000}
BATCH=${BATCH:-100000}
BENCH_ARGS=${BENCH_ARGS:-}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SQL=$HERE/flat-cost
TASKER=${TASKER:-$ROOT/target/release/tasker}
ADMIN_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SERVER=${ADMIN_URL%/*}
EMPTY=tasker_flat_empty_$$
FULL=tasker_flat_full_$$

if [[ ! -x $TASKER ]]; then
    (cd "$ROOT" && cargo build --release -p tasker-cli)
fi

# psql on the admin database / on one of ours, quiet, stopping at an error.
admin() { PGOPTIONS="-c client_min_messages=warning" psql "$ADMIN_URL" -qAtX -v ON_ERROR_STOP=1 "$@"; }
on() { local db=$1; shift; psql "$SERVER/$db" -qAtX -v ON_ERROR_STOP=1 "$@"; }

# The databases go whatever happens.
cleanup() {
    admin -c "DROP DATABASE IF EXISTS $EMPTY WITH (FORCE)" || true
    admin -c "DROP DATABASE IF EXISTS $FULL WITH (FORCE)" || true
    rm -rf "$OUT"
}
OUT=$(mktemp -d)  # the bench outputs
trap cleanup EXIT

# A new database, migrated as `tasker migrate` does.
create() {
    admin -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
    admin -c "CREATE DATABASE $1"
    TASKER_DATABASE__URL=$SERVER/$1 "$TASKER" migrate >/dev/null 2>&1
}

# One `tasker bench` run in database $1; its output goes to $2. Afterwards the
# database is made acceptable to the next run (scripts/flat-cost/cleanup.sql).
bench() {
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of words
    RUST_LOG=warn "$TASKER" bench --database-url "$SERVER/$1" --allow-finished-tasks \
        $BENCH_ARGS >"$2" 2>&1 || { cat "$2"; return 1; }
    on "$1" -f "$SQL/cleanup.sql" >/dev/null
}

# "p50 p99 steps/s" from a bench output: the per-step line and the throughput line.
figures() {
    awk '/per step/ { p50 = $4; p99 = $7 }
         /steps\/s,/ { sps = $1 }
         END { print p50, p99, sps }' "$1"
}

# 1. The full database: migrated, the bench's templates registered by a tiny
#    bench run (its namespace, queues and their indexes too), then filled.
echo "== filling $FULL with $N finished tasks (batches of $BATCH)"
create "$FULL"
BENCH_ARGS="--linear 1 --diamonds 4 --floor-messages 64" bench "$FULL" "$OUT/register"
LINEAR_TPL=$(on "$FULL" -c "SELECT id FROM tasker.templates WHERE namespace = 'bench' AND name = 'linear4'")
DIAMOND_TPL=$(on "$FULL" -c "SELECT id FROM tasker.templates WHERE namespace = 'bench' AND name = 'diamond'")
start=$SECONDS
for ((from = 0; from < N; from += BATCH)); do
    to=$((from + BATCH < N ? from + BATCH : N))
    on "$FULL" -v from="$from" -v to="$to" -v total="$N" \
        -v linear_tpl="$LINEAR_TPL" -v diamond_tpl="$DIAMOND_TPL" -f "$SQL/fill.sql"
    echo "   $to tasks ($((SECONDS - start)) s)"
done
fill_s=$((SECONDS - start))
on "$FULL" -c "VACUUM (ANALYZE)"
vacuum_s=$((SECONDS - start - fill_s))
on "$FULL" -F ' ' -c "SELECT 'tasks', count(*) FROM tasker.tasks" \
    -c "SELECT 'steps', count(*) FROM tasker.steps" \
    -c "SELECT 'step_transitions', count(*) FROM tasker.step_transitions" \
    -c "SELECT 'database size', pg_size_pretty(pg_database_size(current_database()))"
echo "   fill ${fill_s} s, VACUUM ANALYZE ${vacuum_s} s"

# 2. The runs, alternating so that drift on the machine hits both sides.
create "$EMPTY"
for round in 1 2; do
    for db in "$EMPTY" "$FULL"; do
        kind=${db#tasker_flat_}; kind=${kind%%_*}
        echo "== round $round: $kind"
        bench "$db" "$OUT/$kind.$round"
        read -r p50 p99 sps < <(figures "$OUT/$kind.$round")
        echo "   per step p50 $p50 ms  p99 $p99 ms  $sps steps/s"
        # The machine's noise: the raw PGMQ floor before and after the run.
        grep -E '^ +(before|after ):|^noise:' "$OUT/$kind.$round" | sed 's/^ */   /'
        echo "$kind $round $p50 $p99 $sps" >>"$OUT/all"
    done
    # The empty side starts empty again each round.
    [[ $round == 1 ]] && create "$EMPTY"
done

# 3. Per side, the mean of its two rounds (each a median or p99 of its run), and the ratios.
echo "== summary ($N finished tasks in the full database)"
awk '{ p50[$1] += $3 / 2; p99[$1] += $4 / 2; sps[$1] += $5 / 2 }
     END {
       printf "   %-6s per-step p50 %6.2f ms  p99 %6.2f ms  %6.0f steps/s\n", "empty", p50["empty"], p99["empty"], sps["empty"]
       printf "   %-6s per-step p50 %6.2f ms  p99 %6.2f ms  %6.0f steps/s\n", "full", p50["full"], p99["full"], sps["full"]
       printf "   full/empty: p50 %.2fx  p99 %.2fx  throughput %.2fx (goal: p50 <= 1.2x, throughput >= 1/1.2)\n",
              p50["full"] / p50["empty"], p99["full"] / p99["empty"], sps["full"] / sps["empty"]
     }' "$OUT/all"
