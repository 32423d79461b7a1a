# frozen_string_literal: true

require "logger"

module Tasker
  # `context.logger`: a ::Logger whose lines go to the step attempt's log
  # (`tasker step logs <task> <step>`), each with its severity (FATAL is
  # stored as `error`, UNKNOWN as `info`). Usable from any thread, also one
  # the handler starts; level DEBUG unless set lower. Log before returning:
  # lines written after the handler returned may miss the stored log.
  #
  #   def call(context)
  #     context.logger.info("pricing #{context.input['items'].size} items")
  #     ...
  #   end
  class StepLogger < ::Logger
    # Severity => the attempt log's level name (libtasker parses these).
    LEVELS = {
      DEBUG => "debug", INFO => "info", WARN => "warn", ERROR => "error",
      FATAL => "fatal", UNKNOWN => "unknown"
    }.freeze

    # `step` is the native step (Tasker::Native::Step); nil for a context made
    # outside a worker, whose lines go nowhere.
    def initialize(step, progname: nil)
      super(nil, progname: progname, level: DEBUG)
      @step = step
    end

    # ::Logger's one entry point (#info, #warn, ... call it).
    def add(severity, message = nil, progname = nil)
      severity ||= UNKNOWN
      return true if @step.nil? || severity < level

      if message.nil?
        if block_given?
          message = yield
        else
          message = progname
          progname = self.progname
        end
      end
      text = text_of(message)
      text = "#{progname}: #{text}" if progname
      @step.log(LEVELS.fetch(severity, "info"), text)
      true
    rescue StandardError
      true # never let logging break a handler
    end
    alias log add

    private

    # A message as ::Logger::Formatter writes it: an exception with its class
    # and backtrace, a String as is, anything else inspected.
    def text_of(message)
      case message
      when ::String then message
      when ::Exception
        "#{message.message} (#{message.class})\n#{(message.backtrace || []).join("\n")}".chomp
      else message.inspect
      end
    end
  end
end
