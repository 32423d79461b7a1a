#!/usr/bin/env bash
# The installed-gem smoke test: build the .gem, `gem install --local` it into a
# temporary GEM_HOME from a clean directory, then run a small workflow with
# `ruby -e` (no -I: the installed gem is what loads) against a fresh database.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
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
