# frozen_string_literal: true

require_relative "spec_helper"
require_relative "../../examples/ruby/handlers"
require "open3"
require "timeout"

SPEC_TEMPLATES = [<<~FLAKY, <<~PERMANENT, <<~PAIR, <<~SLOW, <<~BROKEN, <<~FIDELITY].freeze
  namespace: rbspec
  name: flaky
  version: 1.0.0
  steps:
    - name: only
      handler: { name: rb.flaky }
      retry: { max_attempts: 3, backoff: linear, base_ms: 10, max_ms: 100, jitter: false }
FLAKY
  namespace: rbspec
  name: permanent
  version: 1.0.0
  steps:
    - name: only
      handler: { name: rb.permanent }
      retry: { max_attempts: 3, backoff: linear, base_ms: 10, max_ms: 100, jitter: false }
PERMANENT
  namespace: rbspec
  name: pair
  version: 1.0.0
  steps:
    - name: one
      handler: { name: rb.rendezvous }
    - name: two
      handler: { name: rb.rendezvous }
PAIR
  namespace: rbspec
  name: slow
  version: 1.0.0
  steps:
    - name: only
      handler: { name: rb.slow }
SLOW
  namespace: rbspec
  name: broken
  version: 1.0.0
  steps:
    - name: only
      handler: { name: rb.broken }
      retry: { max_attempts: 2, backoff: none }
BROKEN
  namespace: rbspec
  name: fidelity
  version: 1.0.0
  steps:
    - name: produce
      handler: { name: rb.produce }
    - name: consume
      handler: { name: rb.consume }
      depends_on: [produce]
    - name: huge
      handler: { name: rb.huge }
      retry: { max_attempts: 3, backoff: none }
    - name: nan
      handler: { name: rb.nan }
      retry: { max_attempts: 3, backoff: none }
    - name: twice
      handler: { name: rb.twice }
      retry: { max_attempts: 3, backoff: none }
FIDELITY

# Two steps of one task meet here: each waits (up to 10 s) until the other has
# arrived. Both see each other only if two Ruby threads run handlers at once.
class Rendezvous
  def initialize
    @lock = Mutex.new
    @arrived = Hash.new(0)
    @cv = ConditionVariable.new
  end

  def call(context)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    @lock.synchronize do
      @arrived[context.task_id] += 1
      @cv.broadcast
      while @arrived[context.task_id] < 2
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        break if left <= 0

        @cv.wait(@lock, left)
      end
      { "saw_other" => @arrived[context.task_id] >= 2, "thread" => Thread.current.object_id }
    end
  end
end

RSpec.describe "tasker with Ruby handlers (integration)" do
  before(:all) do
    @db, @url = TestDatabase.create
    @registry = Example.register(Tasker::Registry.new)
    @registry.register("rb.flaky") do |ctx|
      raise IOError, "transient failure on attempt #{ctx.attempt}" if ctx.attempt == 1

      { "attempt" => ctx.attempt }
    end
    @registry.register("rb.permanent") { |_ctx| raise Tasker::PermanentError, "input rejected" }
    @registry.register("rb.broken") { |_ctx| 1 / 0 }
    @registry.register("rb.rendezvous", Rendezvous.new)
    @seen = seen = {}
    @registry.register("rb.produce") do |ctx|
      seen[:input] = ctx.input
      ctx.input
    end
    @registry.register("rb.consume") do |ctx|
      seen[:parent] = ctx.parent("produce")
      "ok"
    end
    @registry.register("rb.huge") { |_ctx| { "n" => 2**64 } }
    @registry.register("rb.nan") { |_ctx| { "ratio" => [Float::NAN] } }
    @registry.register("rb.twice") { |_ctx| { k: 1, "k" => 2 } }
    @registry.register("rb.slow") do |_ctx|
      sleep 1.5
      "slow"
    end
    @client = Tasker::Client.new(database_url: @url)
    %w[linear diamond].each { |t| @client.register_template(File.read("#{EXAMPLES}/templates/#{t}.yaml")) }
    @client.register_template(File.read("#{EXAMPLES}/ruby/diamond.yaml"))
    SPEC_TEMPLATES.each { |t| @client.register_template(t) }
    @worker = Tasker::Worker.new(namespaces: %w[demo rbspec ruby_example], database_url: @url,
                                 config: TEST_CONFIG, threads: 2, orchestrate: true, registry: @registry)
    @worker.start
  end

  after(:all) do
    @worker&.stop
    @client = nil
    GC.start
    TestDatabase.drop(@db) if @db
  end

  def run_task(namespace, name, context = {}, timeout: 30)
    id = @client.create_task(namespace: namespace, name: name, context: context)
    state = @client.wait(id, timeout: timeout)
    [state, @client.get_task(id)]
  end

  def steps(task)
    task["steps"].to_h { |s| [s["name"], s] }
  end

  it "creates a task with a priority" do
    id = @client.create_task(namespace: "demo", name: "linear", context: { "value" => 3 }, priority: 60)
    expect(@client.wait(id, timeout: 30)).to eq("complete")
    expect(@client.get_task(id)["priority"]).to eq(60)
  end

  it "creates tasks in one batch, all or none, and runs them" do
    expect { @client.create_tasks([{ namespace: "demo", name: "linear", context: { "value" => 1 } },
                                   { namespace: "rbspec", name: "nope" }]) }
      .to raise_error(Tasker::NotFoundError, /tasks\[1\]/)
    expect { @client.create_tasks([{ namespace: "demo", name: "linear", colour: "red" }]) }
      .to raise_error(Tasker::InvalidArgumentError, /tasks\[0\]: unknown field/)
    ids = @client.create_tasks((1..3).map { |v| { namespace: "demo", name: "linear", context: { "value" => v } } })
    expect(ids.uniq.size).to eq(3)
    ids.zip(1..3).each do |id, v|
      expect(@client.wait(id, timeout: 30)).to eq("complete")
      expect(steps(@client.get_task(id))["d"]["result"]).to eq(((v * v + 1) * 2)**2)
    end
  end

  it "starts a batch task given a Time run_at no earlier than it" do
    run_at = Time.now.utc + 2
    delayed, at_once = @client.create_tasks([{ namespace: "demo", name: "linear", context: { "value" => 2 }, run_at: run_at },
                                             { namespace: "demo", name: "linear", context: { "value" => 3 } }])
    expect(@client.wait(at_once, timeout: 30)).to eq("complete")
    expect(@client.wait(delayed, timeout: 30)).to eq("complete")
    task = @client.get_task(delayed)
    expect(Time.iso8601(task["run_at"])).to be_within(0.000001).of(run_at)
    expect(task["steps"].map { |s| Time.iso8601(s["started_at"]) }.min).to be >= Time.iso8601(task["run_at"])
    expect(@client.get_task(at_once)).not_to have_key("run_at")
    one = @client.create_task(namespace: "demo", name: "linear", context: { "value" => 4 }, delay_seconds: 1)
    expect(@client.wait(one, timeout: 30)).to eq("complete")
    expect(@client.get_task(one)["run_at"]).to be_a(String)
    expect { @client.create_tasks([{ namespace: "demo", name: "linear", run_at: "soon" }]) }
      .to raise_error(Tasker::InvalidArgumentError, /tasks\[0\]\.run_at/)
  end

  it "runs a linear task through Ruby handlers" do
    state, task = run_task("demo", "linear", { "value" => 3 })
    expect(state).to eq("complete")
    expect(steps(task).transform_values { |s| s["result"] }).to eq("a" => 9, "b" => 10, "c" => 20, "d" => 400)
  end

  it "runs diamond tasks through Ruby handlers" do
    state, task = run_task("demo", "diamond", { "value" => 3 })
    expect(state).to eq("complete")
    expect(steps(task).transform_values { |s| s["result"] })
      .to eq("start" => 9, "left" => 10, "right" => 18, "join" => 784)

    state, task = run_task("ruby_example", "diamond", { "value" => -2 })
    expect(state).to eq("complete")
    # start 4, left 5, right 8, join (5 + 8)^2
    expect(steps(task)["join"]["result"]).to eq(169)
    expect(steps(task).values.map { |s| s["attempts"] }).to all(eq(1))
  end

  it "retries a step whose handler raised, and completes it on the second attempt" do
    state, task = run_task("rbspec", "flaky")
    expect(state).to eq("complete")
    step = steps(task)["only"]
    expect(step["attempts"]).to eq(2)
    expect(step["result"]).to eq("attempt" => 2)
  end

  it "records the class and message of an exception that used up the attempts" do
    state, task = run_task("rbspec", "broken")
    expect(%w[error blocked_by_failures]).to include(state)
    step = steps(task)["only"]
    expect(step["state"]).to eq("error")
    expect(step["attempts"]).to eq(2)
    expect(JSON.generate(step)).to include("ZeroDivisionError: divided by 0")
    expect(step["last_error"]["kind"]).to eq("exception")
  end

  it "fails a step with PermanentError at once, without a retry" do
    state, task = run_task("rbspec", "permanent")
    expect(%w[error blocked_by_failures]).to include(state)
    step = steps(task)["only"]
    expect(step["state"]).to eq("error")
    expect(step["attempts"]).to eq(1)
    expect(JSON.generate(step)).to include("input rejected")
    # The same kind as every runtime records for a permanent failure.
    expect(step["last_error"]).to include("kind" => "handler", "retryable" => false)
  end

  it "carries 64-bit integers and doubles exactly, and refuses what JSON cannot carry, naming the path" do
    floats = [0.9627240348720673, 2.7715077941825975e-163, 1.0e308, 5.0e-324] + Array.new(200) { rand }
    given = { "edges" => [2**64 - 1, -2**63, 2**63 + 1], "floats" => floats }
    state, task = run_task("rbspec", "fidelity", given)
    expect(%w[error blocked_by_failures]).to include(state)
    by_name = steps(task)
    expect(by_name["produce"]["result"]).to eq(given)
    expect(by_name["consume"]["result"]).to eq("ok")
    expect(@seen[:input]).to eq(given)
    expect(@seen[:parent]).to eq(given)
    expect(@seen[:parent]["floats"].map { |f| [f].pack("G") }).to eq(floats.map { |f| [f].pack("G") })
    { "huge" => ["at $.n:", (2**64).to_s], "nan" => ["at $.ratio[0]:", "NaN"], "twice" => ["at $.k:", "twice"] }
      .each do |name, parts|
        step = by_name[name]
        expect([step["state"], step["attempts"]]).to eq(["error", 1])
        expect(step["last_error"]).to include("kind" => "result", "retryable" => false)
        expect(step["last_error"]["message"]).to include("step '#{name}'", *parts)
      end
  end

  it "refuses a task input JSON cannot carry exactly, naming the path" do
    expect { @client.create_task(namespace: "rbspec", name: "flaky", context: { "n" => 2**64 }) }
      .to raise_error(Tasker::InvalidArgumentError, /at \$\.n: the integer 18446744073709551616/)
  end

  it "runs two steps at once on two Ruby threads (the GVL is released while waiting)" do
    state, task = run_task("rbspec", "pair")
    expect(state).to eq("complete")
    results = steps(task).values.map { |s| s["result"] }
    expect(results.map { |r| r["saw_other"] }).to eq([true, true])
    expect(results.map { |r| r["thread"] }.uniq.size).to eq(2)
  end

  it "keeps the main thread running while the pool waits for steps" do
    ticks = 0
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    ticks += 1 while Process.clock_gettime(Process::CLOCK_MONOTONIC) - started < 0.3
    # Two pool threads sit in next_step; with the GVL held there, this loop
    # would get no time slices at all.
    expect(ticks).to be > 1000
  end

  it "raises Tasker::TimeoutError naming the state when a wait runs out" do
    id = @client.create_task(namespace: "rbspec", name: "slow")
    expect { @client.wait(id, timeout: 0.2) }.to raise_error(Tasker::TimeoutError, /did not settle.*0\.2/)
    expect(@client.wait(id, timeout: 30)).to eq("complete")
  end

  it "raises Tasker::NotFoundError for unknown tasks and templates" do
    expect { @client.get_task("0190f7a0-0000-7000-8000-000000000009") }.to raise_error(Tasker::NotFoundError)
    expect { @client.create_task(namespace: "rbspec", name: "nope") }.to raise_error(Tasker::NotFoundError)
    expect { @client.get_task("not-a-uuid") }.to raise_error(Tasker::InvalidArgumentError)
  end

  it "reports an unreachable database as Tasker::DatabaseError" do
    expect { Tasker::Client.new(database_url: "postgres://postgres@127.0.0.1:1/none") }
      .to raise_error(Tasker::DatabaseError)
  end
end

RSpec.describe "stopping a worker" do
  it "lets the step in flight finish and report, then ends the threads" do
    db, url = TestDatabase.create
    finished = Queue.new
    registry = Tasker::Registry.new
    registry.register("rb.linger") do |ctx|
      sleep 1
      finished << ctx.step_name
      "done"
    end
    client = Tasker::Client.new(database_url: url)
    client.register_template(<<~YAML)
      namespace: rbstop
      name: linger
      version: 1.0.0
      steps:
        - { name: only, handler: { name: rb.linger } }
    YAML
    worker = Tasker::Worker.new(namespaces: ["rbstop"], database_url: url, config: TEST_CONFIG,
                                threads: 2, orchestrate: true, registry: registry).start
    id = client.create_task(namespace: "rbstop", name: "linger")
    Timeout.timeout(20) do
      sleep 0.05 until client.get_task(id)["steps"].first["state"] == "in_progress"
    end
    worker.stop
    expect(finished.size).to eq(1)
    expect(worker.running?).to be(false)
    # A fresh worker (and orchestrator) takes it from there: the reported
    # result counts, the step is not run again.
    again = Tasker::Worker.new(namespaces: ["rbstop"], database_url: url, config: TEST_CONFIG,
                               orchestrate: true, registry: registry).start
    begin
      expect(client.wait(id, timeout: 30)).to eq("complete")
      step = client.get_task(id)["steps"].first
      expect([step["attempts"], step["result"]]).to eq([1, "done"])
      expect(finished.size).to eq(1)
    ensure
      again.stop
    end
  ensure
    client = nil
    GC.start
    TestDatabase.drop(db) if db
  end
end

RSpec.describe "the example worker process" do
  it "serves until SIGINT or SIGTERM, then stops cleanly" do
    db, url = TestDatabase.create
    lib = File.expand_path("../lib", __dir__)
    cmd = [RbConfig.ruby, "-I", lib, "#{EXAMPLES}/ruby/worker.rb", "--serve"]
    Open3.popen2e({ "DATABASE_URL" => url }, *cmd) do |_in, out, wait|
      line = Timeout.timeout(60) { out.gets }
      expect(line).to include("serving ruby_example")
      # The example's own run created the schema: put a task through it.
      client = Tasker::Client.new(database_url: url)
      id = client.create_task(namespace: "ruby_example", name: "diamond", context: { "value" => 3 })
      expect(client.wait(id, timeout: 30)).to eq("complete")
      expect(client.get_task(id)["steps"].find { |s| s["name"] == "join" }["result"]).to eq(784)
      Process.kill("INT", wait.pid)
      status = Timeout.timeout(30) { wait.value }
      rest = out.read
      expect(status.success?).to be(true), rest
      expect(rest).to include("stopped")
    end
    # And SIGTERM, while idle.
    Open3.popen2e({ "DATABASE_URL" => url }, *cmd) do |_in, out, wait|
      expect(Timeout.timeout(60) { out.gets }).to include("serving ruby_example")
      sleep 0.5
      Process.kill("TERM", wait.pid)
      status = Timeout.timeout(30) { wait.value }
      expect(status.success?).to be(true), out.read
    end
  ensure
    GC.start
    TestDatabase.drop(db) if db
  end
end
