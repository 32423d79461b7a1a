# frozen_string_literal: true

require "logger"

module Tasker
  # The engine's own log lines (libtasker's Rust: claiming, heartbeats,
  # retries, database trouble) through `Tasker.logger`.
  #
  # Ruby must not be called from the engine's threads, so libtasker queues
  # the lines (bounded: when full, lines are dropped and counted) and a Ruby
  # thread started here drains them. The engine sends what `Tasker.logger`'s
  # level lets through (WARN by default), read again at every drain, so a
  # level change takes effect within a fraction of a second. Each line is
  # logged with progname "tasker" as "<engine module>: <message>".
  module EngineLog
    # Engine level (1 error .. 5 trace) => ::Logger severity.
    SEVERITY = { 1 => ::Logger::ERROR, 2 => ::Logger::WARN, 3 => ::Logger::INFO,
                 4 => ::Logger::DEBUG, 5 => ::Logger::DEBUG }.freeze
    # How long one drain waits (seconds): bounds how fast a level change is seen.
    DRAIN_SECONDS = 0.2

    @lock = Mutex.new
    @thread = nil
    @level = nil

    class << self
      # Starts the drain thread (once; workers and clients call it) and sends
      # the engine's lines up to Tasker.logger's level from now on.
      def start
        @lock.synchronize do
          sync_level
          return if @thread&.alive?

          @thread = Thread.new { drain_loop }
          @thread.name = "tasker-engine-log"
          @thread.report_on_exception = false
          at_exit { stop } unless @at_exit
          @at_exit = true
        end
      end

      # Stops the thread; the engine's lines go back to stderr (at exit).
      def stop
        thread = @lock.synchronize { @thread.tap { @thread = nil } }
        thread&.kill
        thread&.join(1)
        Native.engine_log_uninstall
        log_lines(Native.engine_log_drain(0.0))
      end

      # The engine level (1 error .. 5 trace) for a ::Logger level.
      def engine_level(severity)
        case severity
        when ::Logger::DEBUG then 4
        when ::Logger::INFO then 3
        when ::Logger::WARN then 2
        else 1
        end
      end

      private

      def sync_level
        wanted = engine_level(Tasker.logger.level)
        return if wanted == @level

        Native.engine_log_install(wanted)
        @level = wanted
      end

      def drain_loop
        loop do
          sync_level
          log_lines(Native.engine_log_drain(DRAIN_SECONDS))
          dropped = Native.engine_log_dropped
          Tasker.logger.warn("tasker") { "#{dropped} engine log lines were dropped (the queue was full)" } if dropped.positive?
        rescue StandardError
          sleep DRAIN_SECONDS # a broken logger must not end the thread, nor spin
        end
      end

      def log_lines(lines)
        lines.each do |level, target, message|
          Tasker.logger.add(SEVERITY.fetch(level, ::Logger::WARN), "#{target}: #{message}", "tasker")
        end
      end
    end
  end
end
