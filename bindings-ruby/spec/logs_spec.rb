# frozen_string_literal: true

require_relative "spec_helper"
require "stringio"

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# Stands in for a native step: keeps what was logged.
class LoggedStep
  attr_reader :lines

  def initialize
    @lines = []
  end

  def log(level, message)
    @lines << [level, message]
  end
end

RSpec.describe "handler logs and trace context (unit)" do
  it "context.logger is a ::Logger writing each severity to the step" do
    step = LoggedStep.new
    context = Tasker::Context.new({ "step_name" => "s", "traceparent" => TRACEPARENT }, step)
    logger = context.logger
    expect(logger).to be_a(Logger)
    logger.info("hello from ruby")
    logger.warn { "from a block" }
    logger.debug("debug is kept")
    logger.error(RuntimeError.new("boom"))
    logger.fatal("fatal is error")
    logger.add(Logger::UNKNOWN, "unknown is info")
    logger.info("billing") { "with a progname" }
    Thread.new { logger.warn("from a thread") }.join
    logger.level = Logger::WARN
    logger.info("below the level: not kept")
    expect(step.lines).to eq([
                               ["info", "hello from ruby"], ["warn", "from a block"],
                               ["debug", "debug is kept"], ["error", "boom (RuntimeError)"],
                               ["fatal", "fatal is error"], ["unknown", "unknown is info"],
                               ["info", "billing: with a progname"], ["warn", "from a thread"]
                             ])
    expect(context.logger).to be(logger)
  end

  it "exposes the traceparent and its trace id" do
    context = Tasker::Context.new({ "traceparent" => TRACEPARENT })
    expect(context.traceparent).to eq(TRACEPARENT)
    expect(context.trace_id).to eq("4bf92f3577b34da6a3ce929d0e0e4736")
    expect(context.to_h["traceparent"]).to eq(TRACEPARENT)
    plain = Tasker::Context.new({})
    expect([plain.traceparent, plain.trace_id]).to eq([nil, nil])
    expect(plain.to_h).not_to have_key("traceparent")
    plain.logger.info("no step: goes nowhere, raises nothing")
  end

  it "maps logger levels to engine levels" do
    expect([Logger::DEBUG, Logger::INFO, Logger::WARN, Logger::ERROR, Logger::FATAL]
             .map { |l| Tasker::EngineLog.engine_level(l) }).to eq([4, 3, 2, 1, 1])
  end
end

RSpec.describe "handler logs (integration)" do
  before(:all) do
    @db, @url = TestDatabase.create
    @registry = Tasker::Registry.new
    @seen = seen = {}
    @registry.register("rb.logs") do |ctx|
      seen[:traceparent] = ctx.traceparent
      seen[:trace_id] = ctx.trace_id
      ctx.logger.info("hello from ruby, attempt #{ctx.attempt}")
      ctx.logger.debug("details")
      raise IOError, "first attempt fails" if ctx.attempt == 1

      { "ok" => true }
    end
    @engine_lines = StringIO.new
    @previous_logger = Tasker.logger
    Tasker.logger = Logger.new(@engine_lines, level: Logger::INFO)
    @client = Tasker::Client.new(database_url: @url)
    @client.register_template(<<~YAML)
      namespace: rblogs
      name: logs
      version: 1.0.0
      steps:
        - name: only
          handler: { name: rb.logs }
          retry: { max_attempts: 3, backoff: none }
    YAML
    @worker = Tasker::Worker.new(namespaces: %w[rblogs], database_url: @url, config: TEST_CONFIG,
                                 threads: 2, orchestrate: true, registry: @registry)
    @worker.start
  end

  after(:all) do
    @worker&.stop
    Tasker.logger = @previous_logger
    @client = nil
    GC.start
    TestDatabase.drop(@db) if @db
  end

  it "stores a handler's logger lines with each attempt, with their levels" do
    id = @client.create_task(namespace: "rblogs", name: "logs")
    expect(@client.wait(id, timeout: 30)).to eq("complete")
    sql = "SELECT attempt, l.line->>'level', split_part(l.line->>'message', E'\\n', 1), " \
          "l.line->>'message' LIKE '%logs_spec.rb%' " \
          "FROM tasker.step_logs, jsonb_array_elements(lines) WITH ORDINALITY AS l(line, n) " \
          "WHERE task_id = '#{id}' ORDER BY attempt, l.n"
    out = IO.popen(["psql", @url, "-qXAt", "-c", sql], &:read)
    rows = out.lines.map { |l| l.chomp.split("|") }
    expect(rows).to eq([
                         ["1", "info", "hello from ruby, attempt 1", "f"],
                         ["1", "debug", "details", "f"],
                         # The exception the first attempt raised, with its backtrace.
                         ["1", "error", "first attempt fails (IOError)", "t"],
                         ["2", "info", "hello from ruby, attempt 2", "f"],
                         ["2", "debug", "details", "f"]
                       ])
    # The attempt's trace context: while spans are not exported, the task's
    # own traceparent (kept with the task).
    stored = IO.popen(["psql", @url, "-qXAt", "-c",
                       "SELECT traceparent FROM tasker.tasks WHERE id = '#{id}'"], &:read).strip
    expect(stored).to match(/\A00-\h{32}-\h{16}-01\z/)
    expect(@seen[:traceparent]).to eq(stored)
    expect(@seen[:trace_id]).to eq(stored.split("-")[1])
  end

  it "sends the engine's lines to Tasker.logger from a Ruby thread" do
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    sleep 0.05 until @engine_lines.string.include?("worker started") ||
                     Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    expect(@engine_lines.string).to match(/INFO -- tasker: tasker_worker: worker started/)
  end
end
