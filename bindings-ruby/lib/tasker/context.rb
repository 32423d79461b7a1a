# frozen_string_literal: true

module Tasker
  # What a handler gets for one attempt of one step.
  class Context
    # Task input (Hash), results of the parent steps by step name (Hash), the
    # handler config from the template (Hash).
    attr_reader :input, :parent_results, :config
    attr_reader :task_id, :step_id, :namespace, :template, :step_name, :handler_name,
                :attempt, :max_attempts, :timeout_seconds

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
      @step = step
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
      {
        "task_id" => task_id, "step_id" => step_id, "namespace" => namespace,
        "template" => template, "step_name" => step_name, "handler" => handler_name,
        "attempt" => attempt, "max_attempts" => max_attempts, "input" => input,
        "parent_results" => parent_results, "config" => config,
        "timeout_seconds" => timeout_seconds
      }
    end
  end
end
