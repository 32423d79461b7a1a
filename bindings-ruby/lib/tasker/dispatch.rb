# frozen_string_literal: true

module Tasker
  # Runs one pulled step through its Ruby handler and completes it. Never
  # raises for a handler's failure: that becomes the step's failed outcome,
  # recorded with one of the error kinds every runtime shares
  # (docs/error-kinds.md; the strings come from the extension):
  #
  # - `handler`: the handler raised Tasker::RetryableError or Tasker::PermanentError;
  # - `exception`: it raised anything else;
  # - `result`: its return value is not JSON, or JSON cannot carry it exactly
  #   (an Integer beyond 64 bits, Float::NAN, ...: libtasker refuses it,
  #   naming the value's path);
  # - `no_handler`: no handler of that name is registered.
  #
  # An exception's class, message and backtrace also go to the attempt's log.
  module Dispatch
    Kind = Native::ErrorKind

    module_function

    def run(registry, step)
      context = Context.new(step.context, step)
      handler = registry.resolve(context.handler_name)
      if handler.nil?
        step.fail("no Ruby handler is registered as #{context.handler_name.inspect}",
                  false, nil, Kind::NO_HANDLER)
        return
      end
      result = handler.call(context)
    rescue PermanentError => e
      complete_failure(step, e.message, false, nil, Kind::HANDLER)
    rescue RetryableError => e
      after = e.retry_after && (e.retry_after.to_f * 1000).ceil
      complete_failure(step, e.message, true, after, Kind::HANDLER)
    rescue StopIteration, StandardError, ScriptError, SystemStackError, NoMemoryError => e
      # The backtrace goes to the attempt's log (`tasker step logs`).
      context&.logger&.error(e)
      complete_failure(step, "#{e.class}: #{e.message}", true, nil, Kind::EXCEPTION)
    rescue Exception => e # rubocop:disable Lint/RescueException
      # Interrupt, SystemExit, Thread#kill: fail the attempt (another may
      # succeed), then let the exception go on.
      complete_failure(step, "#{e.class}: #{e.message}", true, nil, Kind::EXCEPTION)
      raise
    else
      complete_success(step, context, result)
    end

    # Completes the step with `result` as JSON. NaN and Infinity are written
    # (allow_nan) so that libtasker refuses them naming their path, as it
    # does an Integer beyond 64 bits; either way the step fails with kind
    # `result`, and so does a value JSON.generate rejects.
    def complete_success(step, context, result)
      json = begin
        JSON.generate(result, allow_nan: true)
      rescue StandardError, SystemStackError => e # JSON::GeneratorError, NestingError, a to_json that raised
        return complete_failure(step, "step '#{context.step_name}' returned a result that is not JSON: " \
                                      "#{e.class}: #{e.message}", false, nil, Kind::RESULT)
      end
      step.succeed(json)
    rescue StepGoneError, AlreadyCompletedError
      nil
    end

    def complete_failure(step, message, retryable, retry_after_ms, kind)
      step.fail(message.to_s, retryable, retry_after_ms, kind)
    rescue StepGoneError, AlreadyCompletedError
      nil
    end
  end
end
