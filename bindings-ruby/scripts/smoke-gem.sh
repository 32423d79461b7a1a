#!/usr/bin/env bash
# The installed-gem smoke test: build the .gem, `gem install --local` it into a
# temporary GEM_HOME from a clean directory, then run a small workflow with
# `ruby -e` (no -I: the installed gem is what loads) against a fresh database.
#
#   smoke-gem.sh [EXT_OUT]   # EXT_OUT: also copy the installed gem's compiled
#                            # extension there (scripts/test.sh runs rspec on it)
#
# With CARGO_TARGET_DIR set, the gem's build shares it (dependencies already
# built are reused) and installs under $CARGO_TARGET_DIR/ruby-gem-smoke, a
# fixed path, so repeated runs do not leave new artifacts behind.
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

gemfile="$("$here/scripts/build-gem.sh" "$work/pkg")"
echo "built $gemfile ($(du -h "$gemfile" | cut -f1))"
cd "$work"
export GEM_HOME="$work/gems" GEM_PATH="$work/gems"
start=$(date +%s)
gem install --local --no-document "$gemfile"
echo "installed in $(( $(date +%s) - start )) s"
if [ -n "$ext_out" ]; then
  installed="$(find "$GEM_HOME" -name 'tasker_rb.so' | head -1)"
  [ -n "$installed" ] || { echo "smoke: no tasker_rb.so in the installed gem" >&2; exit 1; }
  cp "$installed" "$ext_out"
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
