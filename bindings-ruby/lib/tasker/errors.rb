# frozen_string_literal: true

module Tasker
  # Base class of the errors the library raises (the message is libtasker's).
  class Error < StandardError; end
  # A wait did not finish in time (Client#wait names the state the task was in).
  class TimeoutError < Error; end
  # The worker has stopped: no more steps will come.
  class StoppedError < Error; end
  # The task, template or namespace does not exist.
  class NotFoundError < Error; end
  # The database failed or could not be reached.
  class DatabaseError < Error; end
  # The configuration is invalid.
  class ConfigError < Error; end
  # A call that does not fit the object's state (e.g. starting a worker twice).
  class StateError < Error; end
  # An argument was not acceptable.
  class InvalidArgumentError < Error; end
  # The worker no longer waits for this step; the outcome was discarded.
  class StepGoneError < Error; end
  # The step already has an outcome.
  class AlreadyCompletedError < Error; end

  # Raised by a handler: the attempt failed, and another one may help.
  # `retry_after:` (seconds) asks for the next attempt no sooner than that.
  class RetryableError < StandardError
    attr_reader :retry_after

    def initialize(message = "retryable failure", retry_after: nil)
      super(message)
      @retry_after = retry_after
    end
  end

  # Raised by a handler: the step failed for good, without another attempt.
  class PermanentError < StandardError
    def initialize(message = "permanent failure")
      super
    end
  end
end
