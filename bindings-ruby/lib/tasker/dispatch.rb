# frozen_string_literal: true

module Tasker
  # Runs one pulled step through its Ruby handler and completes it. Never
  # raises for a handler's failure: that becomes the step's failed outcome.
  module Dispatch
    module_function

    def run(registry, step)
      context = Context.new(step.context, step)
      handler = registry.resolve(context.handler_name)
      if handler.nil?
        step.fail("no Ruby handler is registered as #{context.handler_name.inspect}",
                  false, nil, "no_handler")
        return
      end
      result = handler.call(context)
      step.succeed(JSON.generate(result))
    rescue PermanentError => e
      complete_failure(step, e.message, false, nil, "permanent")
    rescue RetryableError => e
      after = e.retry_after && (e.retry_after.to_f * 1000).ceil
      complete_failure(step, e.message, true, after, "retryable")
    rescue StopIteration, StandardError, ScriptError, SystemStackError, NoMemoryError => e
      complete_failure(step, "#{e.class}: #{e.message}", true, nil, "exception")
    rescue Exception => e # rubocop:disable Lint/RescueException
      # Interrupt, SystemExit, Thread#kill: fail the attempt (another may
      # succeed), then let the exception go on.
      complete_failure(step, "#{e.class}: #{e.message}", true, nil, "exception")
      raise
    end

    def complete_failure(step, message, retryable, retry_after_ms, kind)
      step.fail(message.to_s, retryable, retry_after_ms, kind)
    rescue StepGoneError, AlreadyCompletedError
      nil
    end
  end
end
