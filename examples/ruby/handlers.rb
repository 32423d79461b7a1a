# frozen_string_literal: true

# Ruby step handlers for examples/ruby/diamond.yaml, and `math.compute` for the
# shared templates in examples/templates (linear, diamond).
#
# A step's number is the task's `value` for a root step, else the sum of its
# parents' results.
require "tasker"

module Example
  def self.number(context)
    return context.input.fetch("value") if context.parent_results.empty?

    context.parent_results.values.sum
  end

  # Squares the number.
  class Square < Tasker::StepHandler
    def call(context) = Example.number(context)**2
  end

  # Adds config "operand" (default 1).
  class Add < Tasker::StepHandler
    def call(context) = Example.number(context) + context.config.fetch("operand", 1)
  end

  # Multiplies by config "operand" (default 2).
  class Multiply < Tasker::StepHandler
    def call(context) = Example.number(context) * context.config.fetch("operand", 2)
  end

  # `math.compute` with config "op": square, add or multiply (and "operand").
  class Compute < Tasker::StepHandler
    OPS = { "square" => Square, "add" => Add, "multiply" => Multiply }.freeze

    def call(context)
      op = context.config["op"]
      handler = OPS[op] or raise Tasker::PermanentError, "unknown op #{op.inspect}"
      handler.new.call(context)
    end
  end

  def self.register(registry = Tasker.registry)
    registry.register("ruby.square", Square)
    registry.register("ruby.add", Add)
    registry.register("ruby.multiply", Multiply)
    registry.register("math.compute", Compute)
    registry
  end
end
