# frozen_string_literal: true

# The Ruby example worker.
#
#   ruby examples/ruby/worker.rb           # registers the template, runs one diamond task, prints it
#   ruby examples/ruby/worker.rb --serve   # serves ruby_example steps until Ctrl-C
#
# Uses DATABASE_URL, else the local default database; the schema is created
# on first connect. With the gem installed, `require "tasker"` finds it; in
# the repository run it with `ruby -I bindings-ruby/lib` after
# bindings-ruby/scripts/build-ext.sh.
require "tasker"
require_relative "handlers"

Example.register

client = Tasker::Client.new
client.register_template(File.read(File.join(__dir__, "diamond.yaml")))

# orchestrate: this single process also runs the orchestrator (otherwise a
# `tasker server` must run somewhere).
worker = Tasker::Worker.new(namespaces: ["ruby_example"], threads: 2, orchestrate: true)

if ARGV.include?("--serve")
  $stdout.puts "serving ruby_example with #{worker.threads} Ruby threads (Ctrl-C stops)"
  $stdout.flush
  worker.run
  $stdout.puts "stopped"
else
  worker.start
  begin
    value = Integer(ENV.fetch("VALUE", "3"))
    id = client.create_task(namespace: "ruby_example", name: "diamond", context: { "value" => value })
    state = client.wait(id, timeout: 30)
    task = client.get_task(id)
    results = task["steps"].to_h { |s| [s["name"], s["result"]] }
    puts "task #{id}: #{state}"
    results.sort.each { |name, result| puts "  #{name} = #{result.inspect}" }
    exit(state == "complete" ? 0 : 1)
  ensure
    worker.stop
  end
end
