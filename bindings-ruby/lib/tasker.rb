# frozen_string_literal: true

require "json"
require "logger"
require_relative "tasker/version"
require_relative "tasker/errors"
require "tasker/tasker_rb"
require_relative "tasker/step_logger"
require_relative "tasker/engine_log"
require_relative "tasker/context"
require_relative "tasker/step_handler"
require_relative "tasker/registry"
require_relative "tasker/dispatch"
require_relative "tasker/worker"
require_relative "tasker/client"

# tasker: Ruby handlers and a client for the tasker workflow orchestrator.
module Tasker
  class << self
    # Where the engine's own log lines go (Tasker::EngineLog): a ::Logger,
    # by default Logger.new($stderr) at WARN. Set another any time; its level
    # decides which engine lines are sent.
    def logger
      @logger ||= ::Logger.new($stderr, level: ::Logger::WARN, progname: "tasker")
    end

    attr_writer :logger

    # The registry workers use by default.
    def registry
      @registry ||= Registry.new
    end

    # Registers `handler` (a Tasker::StepHandler subclass or anything with
    # #call(context)) under `name`.
    def register(name, handler = nil, &block)
      registry.register(name, handler, &block)
    end

    # Registers a block as the handler `name`: Tasker.handler("x") { |ctx| ... }
    def handler(name, &block)
      raise ArgumentError, "Tasker.handler needs a block" unless block

      registry.register(name, block)
    end
  end
end
