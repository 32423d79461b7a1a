# frozen_string_literal: true

require_relative "spec_helper"

# A fake native step: records the outcome the dispatcher gives it.
class FakeStep
  attr_reader :outcome

  def initialize(context)
    @json = JSON.generate(context)
    @outcome = nil
  end

  def context = JSON.parse(@json)
  def cancelled? = false

  # As the native step: nil when the result was taken, else the refusal.
  def succeed(json)
    raise Tasker::AlreadyCompletedError, "twice" if @outcome

    @outcome = [:success, JSON.parse(json, allow_nan: true)]
    nil
  end

  def fail(message, retryable, retry_after_ms, kind)
    raise Tasker::AlreadyCompletedError, "twice" if @outcome

    @outcome = [:failure, { message: message, retryable: retryable, retry_after_ms: retry_after_ms, kind: kind }]
  end
end

CONTEXT = {
  "task_id" => "0190f7a0-0000-7000-8000-000000000001",
  "step_id" => "0190f7a0-0000-7000-8000-000000000002",
  "namespace" => "demo", "template" => "demo/diamond@1.0.0",
  "step_name" => "join", "handler" => "math.compute",
  "attempt" => 2, "max_attempts" => 3,
  "input" => { "value" => 3 },
  "parent_results" => { "left" => 10, "right" => 18 },
  "config" => { "op" => "square" },
  "timeout_seconds" => 30
}.freeze

class SpecSquare < Tasker::StepHandler
  def call(context) = context.input["value"]**2
end

RSpec.describe Tasker::Context do
  subject(:ctx) { described_class.new(CONTEXT) }

  it "exposes the input, parent results, config, attempt, ids, namespace and step name" do
    expect(ctx.input).to eq("value" => 3)
    expect(ctx.task_input).to eq("value" => 3)
    expect(ctx.parent_results).to eq("left" => 10, "right" => 18)
    expect(ctx.parent(:left)).to eq(10)
    expect { ctx.parent("nope") }.to raise_error(KeyError)
    expect(ctx.config).to eq("op" => "square")
    expect(ctx.attempt).to eq(2)
    expect(ctx.max_attempts).to eq(3)
    expect(ctx.task_id).to eq(CONTEXT["task_id"])
    expect(ctx.step_id).to eq(CONTEXT["step_id"])
    expect(ctx.namespace).to eq("demo")
    expect(ctx.step_name).to eq("join")
    expect(ctx.handler_name).to eq("math.compute")
    expect(ctx.template).to eq("demo/diamond@1.0.0")
    expect(ctx.timeout_seconds).to eq(30)
    expect(ctx.cancelled?).to be(false)
    expect(ctx.to_h).to eq(CONTEXT)
  end

  it "defaults missing input, parents and config to empty hashes" do
    ctx = described_class.new("attempt" => 1)
    expect([ctx.input, ctx.parent_results, ctx.config]).to eq([{}, {}, {}])
  end
end

RSpec.describe Tasker::RetryableError do
  it "carries an optional retry_after" do
    expect(described_class.new("later", retry_after: 1.5).retry_after).to eq(1.5)
    expect(described_class.new("now").retry_after).to be_nil
    expect(described_class.new("x")).to be_a(StandardError)
  end

  it "is distinct from PermanentError and from the library's errors" do
    expect(Tasker::PermanentError.new("no")).not_to be_a(described_class)
    expect(Tasker::TimeoutError.ancestors).to include(Tasker::Error)
    expect(described_class.ancestors).not_to include(Tasker::Error)
  end
end

RSpec.describe Tasker::Registry do
  let(:registry) { described_class.new }

  it "registers classes, blocks and callables by name" do
    registry.register("math.square", SpecSquare)
    registry.register("double") { |ctx| ctx.input["value"] * 2 }
    registry.register("lambda", ->(_ctx) { :ok })
    expect(registry.names).to contain_exactly("math.square", "double", "lambda")
    expect(registry.resolve("math.square")).to be_a(SpecSquare)
    expect(registry.resolve("double").call(Tasker::Context.new(CONTEXT))).to eq(6)
    expect(registry.resolve("missing")).to be_nil
  end

  it "rejects what cannot handle a step, and empty names" do
    expect { registry.register("x", Object) }.to raise_error(ArgumentError, /StepHandler subclass/)
    expect { registry.register("x", 42) }.to raise_error(ArgumentError)
    expect { registry.register("", SpecSquare) }.to raise_error(ArgumentError, /empty/)
  end

  it "registers through Tasker.register, Tasker.handler and handler_name" do
    Tasker.register("spec.square", SpecSquare)
    Tasker.handler("spec.block") { |ctx| ctx.attempt }
    klass = Class.new(Tasker::StepHandler) { handler_name "spec.named" }
    expect(Tasker.registry["spec.square"]).to eq(SpecSquare)
    expect(Tasker.registry.resolve("spec.block").call(Tasker::Context.new(CONTEXT))).to eq(2)
    expect(Tasker.registry["spec.named"]).to eq(klass)
    expect(klass.handler_name).to eq("spec.named")
    expect { Tasker.handler("spec.noblock") }.to raise_error(ArgumentError)
  ensure
    %w[spec.square spec.block spec.named].each { |n| Tasker.registry.unregister(n) }
  end
end

RSpec.describe Tasker::Dispatch do
  let(:registry) { Tasker::Registry.new }

  def dispatch(handler_name = "math.compute", &handler)
    registry.register(handler_name, handler) if handler
    step = FakeStep.new(CONTEXT)
    described_class.run(registry, step)
    step.outcome
  end

  it "turns a Hash, an Array, a scalar or nil into the JSON result" do
    expect(dispatch { |c| { "sum" => c.parent("left") + c.parent("right") } }).to eq([:success, { "sum" => 28 }])
    expect(dispatch { [1, "two", nil] }).to eq([:success, [1, "two", nil]])
    expect(dispatch { 784 }).to eq([:success, 784])
    expect(dispatch { "text" }).to eq([:success, "text"])
    expect(dispatch { nil }).to eq([:success, nil])
  end

  it "runs a StepHandler subclass" do
    registry.register("math.compute", SpecSquare)
    expect(dispatch).to eq([:success, 9])
  end

  it "fails permanently on PermanentError, with kind handler" do
    expect(dispatch { raise Tasker::PermanentError, "bad input" })
      .to eq([:failure, { message: "bad input", retryable: false, retry_after_ms: nil, kind: "handler" }])
  end

  it "fails retryably on RetryableError, with retry_after in milliseconds and kind handler" do
    expect(dispatch { raise Tasker::RetryableError.new("busy", retry_after: 1.5) })
      .to eq([:failure, { message: "busy", retryable: true, retry_after_ms: 1500, kind: "handler" }])
  end

  it "takes its error kinds from the library" do
    kinds = Tasker::Native::ErrorKind
    expect([kinds::HANDLER, kinds::EXCEPTION, kinds::RESULT, kinds::NO_HANDLER])
      .to eq(%w[handler exception result no_handler])
  end

  it "records any other exception's class and message as a retryable failure" do
    expect(dispatch { raise ArgumentError, "boom" })
      .to eq([:failure, { message: "ArgumentError: boom", retryable: true, retry_after_ms: nil, kind: "exception" }])
    expect(dispatch { raise NotImplementedError, "later" }[1][:message]).to eq("NotImplementedError: later")
  end

  it "fails a step whose handler is not registered, permanently" do
    outcome = dispatch
    expect(outcome[0]).to eq(:failure)
    expect(outcome[1]).to include(retryable: false, kind: "no_handler")
  end

  it "fails a result JSON.generate rejects, permanently, with kind result" do
    outcome = dispatch { "\xff".dup.force_encoding("UTF-8") }
    expect(outcome[0]).to eq(:failure)
    expect(outcome[1]).to include(retryable: false, kind: "result")
    expect(outcome[1][:message]).to match(/step 'join' returned a result that is not JSON: JSON::GeneratorError/)
  end

  it "hands NaN to the library as NaN, for it to refuse naming the path" do
    expect(dispatch { { "ratio" => Float::NAN } }[1]["ratio"]).to be_nan
  end
end

RSpec.describe Tasker::Worker do
  it "validates its arguments and needs handlers to start" do
    expect { described_class.new(namespaces: ["demo"], threads: 0) }.to raise_error(ArgumentError)
    worker = described_class.new(namespaces: ["demo"], registry: Tasker::Registry.new)
    expect { worker.start }.to raise_error(Tasker::InvalidArgumentError, /no handlers/)
    expect(worker.running?).to be(false)
    expect(worker.stop).to eq(worker)
  end

  it "reports a bad configuration as Tasker::ConfigError" do
    registry = Tasker::Registry.new
    registry.register("x") { 1 }
    worker = described_class.new(namespaces: ["demo"], config: "[worker\nbroken", registry: registry)
    expect { worker.start }.to raise_error(Tasker::ConfigError)
  end
end
