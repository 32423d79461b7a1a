#!/usr/bin/env bash
# The installed-gem smoke test: build the platform gem (`rake native gem`: the
# extension compiled in the workspace, inside the gem), `gem install --local`
# it into a fresh GEM_HOME from a clean directory with no cargo on PATH
# (installing compiles nothing; the time is printed), then run a small
# workflow with `ruby -e` (no -I: the installed gem is what loads) against a
# fresh database.
#
#   smoke-gem.sh [EXT_OUT]   # EXT_OUT: also copy the installed gem's compiled
#                            # extension there (scripts/test.sh runs rspec on it)
#   SOURCE_GEM=1 smoke-gem.sh   # the source gem instead: `gem install` runs cargo
#
# With CARGO_TARGET_DIR set, the build shares it (the workspace's artifacts
# are reused, none invalidated; PROFILE=debug builds unoptimized, see the Rakefile) and the test works under
# $CARGO_TARGET_DIR/ruby-gem-smoke, a fixed path, so repeated runs do not leave
# new artifacts behind.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ext_out="${1:-}"
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  work="$CARGO_TARGET_DIR/ruby-gem-smoke"
  rm -rf "$work"
  mkdir -p "$work"
else
  work="$(mktemp -d)"
fi
server="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server="${server%/*}"
db="tasker_rb_smoke_$$"
cleanup() {
  psql "$server/postgres" -qXc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

start=$SECONDS
if [ "${SOURCE_GEM:-0}" = 1 ]; then
  (cd "$here" && rake gem OUT_DIR="$work/pkg")
  install_path="$PATH"        # the source gem needs cargo
else
  (cd "$here" && rake native gem OUT_DIR="$work/pkg")
  install_path="/usr/bin:/bin"  # no cargo, no rustc
fi
gemfile="$(ls "$work"/pkg/tasker-*.gem)"
echo "built $gemfile ($(du -h "$gemfile" | cut -f1)) in $(( SECONDS - start )) s"
cd "$work"
export GEM_HOME="$work/gems" GEM_PATH="$work/gems"
start=$EPOCHREALTIME
PATH="$install_path" gem install --local --no-document "$gemfile"
awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "installed in %.1f s\n", b - a }'
if [ -n "$ext_out" ]; then
  installed="$(find "$GEM_HOME" -name 'tasker_rb.so' | head -1)"
  [ -n "$installed" ] || { echo "smoke: no tasker_rb.so in the installed gem" >&2; exit 1; }
  cp "$installed" "$ext_out.new"
  mv "$ext_out.new" "$ext_out"
fi

psql "$server/postgres" -qXc "CREATE DATABASE $db" >/dev/null
DATABASE_URL="$server/$db" ruby -e '
  require "tasker"
  native = $LOADED_FEATURES.grep(/tasker_rb/).first
  abort "the extension did not come from the installed gem: #{native}" unless native.start_with?(ENV["GEM_HOME"])
  Tasker.handler("smoke.double") { |ctx| (ctx.parent_results.values.first || ctx.input["value"]) * 2 }
  client = Tasker::Client.new
  client.register_template(<<~YAML)
    namespace: smoke
    name: chain
    version: 1.0.0
    steps:
      - { name: a, handler: { name: smoke.double } }
      - { name: b, handler: { name: smoke.double }, depends_on: [a] }
  YAML
  worker = Tasker::Worker.new(namespaces: ["smoke"], threads: 2, orchestrate: true).start
  begin
    id = client.create_task(namespace: "smoke", name: "chain", context: { "value" => 21 })
    state = client.wait(id, timeout: 30)
    result = client.get_task(id)["steps"].find { |s| s["name"] == "b" }["result"]
    abort "smoke: task #{state}, result #{result.inspect}" unless state == "complete" && result == 84
    puts "smoke: installed gem ran a task (#{state}, b = #{result}) with #{native}"
  ensure
    worker.stop
  end
'
