# frozen_string_literal: true

module Tasker
  # Base class of handlers: subclass it and define #call(context), returning a
  # Hash, an Array or a scalar (it becomes the step's JSON result). Raise
  # Tasker::RetryableError or Tasker::PermanentError to fail; any other
  # exception fails the attempt as retryable (its class and message recorded).
  #
  #   class Square < Tasker::StepHandler
  #     handler_name "math.square" # optional: registers the class
  #     def call(context) = context.input["value"]**2
  #   end
  #
  # A new instance serves each step.
  class StepHandler
    # Registers this class under `name` (with no argument: the name it was
    # registered under, if any).
    def self.handler_name(name = nil, registry: Tasker.registry)
      return @handler_name if name.nil?

      @handler_name = name.to_s
      registry.register(@handler_name, self)
    end

    def call(_context)
      raise NotImplementedError, "#{self.class} must define call(context)"
    end
  end
end
