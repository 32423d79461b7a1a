# frozen_string_literal: true

require "json"
require "time"

module Tasker
  # Registers templates, creates tasks, reads and waits for them, straight
  # over the database (an orchestrator must run somewhere for tasks to move).
  class Client
    def initialize(config: nil, database_url: nil)
      EngineLog.start # the engine's own lines through Tasker.logger
      @native = Native::Client.new(config, database_url)
    end

    # Registers a template given as YAML (or JSON) text; returns its key
    # "namespace/name@version".
    def register_template(yaml)
      @native.register_template(yaml.to_s)
    end

    # Creates a task; returns its id (a String). `priority` is seconds of
    # head start in the claim order (docs/flow-control.md). `run_at` (a Time
    # or RFC 3339 text, at most a year ahead) or `delay_seconds` delays its
    # start: no step runs before it.
    def create_task(namespace:, name:, context: {}, version: nil, idempotency_key: nil, priority: 0,
                    run_at: nil, delay_seconds: nil)
      unless run_at.nil? && delay_seconds.nil?
        task = { namespace: namespace.to_s, name: name.to_s, context: context, version: version&.to_s,
                 idempotency_key: idempotency_key&.to_s, priority: Integer(priority) }
        task[:run_at] = run_at unless run_at.nil?
        task[:delay_seconds] = delay_seconds unless delay_seconds.nil?
        return create_tasks([task]).first
      end
      id, _created = @native.create_task(namespace.to_s, name.to_s, JSON.generate(context),
                                         version&.to_s, idempotency_key&.to_s, Integer(priority))
      id
    end

    # Creates many tasks in one transaction: all of them, or none when one is
    # refused (the error names it, "tasks[i]: ..."); up to 1,000. Each task is
    # a Hash with :namespace, :name and optionally :context, :version,
    # :idempotency_key, :priority, and a delayed start: :run_at (RFC 3339
    # text or a Time, at most a year ahead) or :delay_seconds. Returns their
    # ids in order.
    def create_tasks(tasks)
      @native.create_tasks(JSON.generate(tasks.to_a.map { |t| with_rfc3339_run_at(t) })).map(&:first)
    end

    # The task with its steps and edges (a Hash with string keys).
    def get_task(id)
      JSON.parse(@native.get_task(id.to_s))
    end

    # Waits for the task to settle; returns its state ("complete", "error",
    # "cancelled", "blocked_by_failures", ...). Raises Tasker::TimeoutError
    # after `timeout` seconds.
    def wait(id, timeout: 30)
      @native.wait(id.to_s, timeout.to_f)
    end

    private

    # A task Hash whose run_at is a Time (JSON would write "2026-12-06
    # 07:51:49 UTC") with it as RFC 3339 text instead.
    def with_rfc3339_run_at(task)
      key = [:run_at, "run_at"].find { |k| task.respond_to?(:key?) && task.key?(k) }
      return task unless key && task[key].respond_to?(:iso8601)

      task.merge(key => task[key].iso8601(6))
    end
  end
end
