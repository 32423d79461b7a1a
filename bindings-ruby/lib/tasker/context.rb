# frozen_string_literal: true

module Tasker
  # What a handler gets for one attempt of one step.
  class Context
    # Task input (Hash), results of the parent steps by step name (Hash), the
    # handler config from the template (Hash).
    attr_reader :input, :parent_results, :config
    attr_reader :task_id, :step_id, :namespace, :template, :step_name, :handler_name,
                :attempt, :max_attempts, :timeout_seconds
    # The attempt's W3C trace context ("00-<trace id>-<span id>-<flags>"), set for
    # every claimed step (nil only for a context made outside a worker): pass it on as the `traceparent` header
    # of calls the handler makes, or make it the parent of its own spans.
    attr_reader :traceparent

    # `data` is the step context as parsed JSON (string keys); `step` the
    # native step, if any (for #cancelled?).
    def initialize(data, step = nil)
      @task_id = data["task_id"]
      @step_id = data["step_id"]
      @namespace = data["namespace"]
      @template = data["template"]
      @step_name = data["step_name"]
      @handler_name = data["handler"]
      @attempt = data["attempt"]
      @max_attempts = data["max_attempts"]
      @input = data["input"] || {}
      @parent_results = data["parent_results"] || {}
      @config = data["config"] || {}
      @timeout_seconds = data["timeout_seconds"]
      @traceparent = data["traceparent"]
      @step = step
    end

    # The trace id of #traceparent (32 hex digits), or nil.
    def trace_id
      id = @traceparent&.split("-")&.[](1)
      id if id&.size == 32
    end

    # A ::Logger whose lines go to this attempt's log, with their severities
    # (Tasker::StepLogger).
    def logger
      @logger ||= StepLogger.new(@step)
    end

    alias task_input input

    # The result of parent step `name`; KeyError when there is no such parent.
    def parent(name)
      @parent_results.fetch(name.to_s)
    end

    # True once the worker no longer wants this attempt's outcome (the task
    # was cancelled, the step timed out, the worker is stopping).
    def cancelled?
      !@step.nil? && @step.cancelled?
    end

    def to_h
      h = {
        "task_id" => task_id, "step_id" => step_id, "namespace" => namespace,
        "template" => template, "step_name" => step_name, "handler" => handler_name,
        "attempt" => attempt, "max_attempts" => max_attempts, "input" => input,
        "parent_results" => parent_results, "config" => config,
        "timeout_seconds" => timeout_seconds
      }
      h["traceparent"] = traceparent if traceparent
      h
    end
  end
end
