# frozen_string_literal: true

module Tasker
  # A worker: serves the namespaces' steps whose handlers are registered in
  # Ruby, on a pool of Ruby threads. Each thread waits for a step with the GVL
  # released, runs its handler, and reports the outcome.
  #
  #   Tasker::Worker.new(namespaces: ["demo"], threads: 4).run # until SIGINT/SIGTERM
  #
  # `config` is TOML text laid over the built-in defaults; `database_url` wins
  # over it (default: DATABASE_URL, else the local default database).
  # `orchestrate: true` also runs an orchestrator in this process (needed
  # unless a `tasker server` runs somewhere). `logger:` receives the worker's
  # own messages (default Tasker.logger, which also gets the engine's lines).
  class Worker
    attr_reader :namespaces, :pools, :threads, :registry

    # `pools:` are further pools (step queues that templates route steps to
    # with `pool:`) served beyond the namespaces'.
    def initialize(namespaces: [], pools: [], config: nil, database_url: nil, threads: 2,
                   orchestrate: false, registry: Tasker.registry, poll_interval: 0.5, logger: nil)
      raise ArgumentError, "threads must be at least 1" unless threads.is_a?(Integer) && threads >= 1

      @namespaces = Array(namespaces).map(&:to_s)
      @pools = Array(pools).map(&:to_s)
      if @namespaces.empty? && @pools.empty?
        raise ArgumentError, "a worker needs at least one namespace or pool"
      end

      @config = config
      @database_url = database_url
      @threads = threads
      @orchestrate = orchestrate
      @registry = registry
      @poll_interval = poll_interval
      @logger = logger
      @pool = []
      @native = nil
      @lock = Mutex.new
    end

    # Connects (migrating the database) and starts the thread pool. Returns self.
    def start
      @lock.synchronize do
        raise StateError, "the worker is already started" if @native

        names = @registry.names
        raise InvalidArgumentError, "no handlers are registered: register some before starting" if names.empty?

        # The namespaces given here replace those of the configuration.
        native = Native::Worker.new(@config, @database_url, @threads, @namespaces)
        native.orchestrate = @orchestrate
        @pools.each { |pool| native.add_pool(pool) }
        native.set_runtime("ruby", RUBY_VERSION)
        names.each { |name| native.register_pull(name) }
        EngineLog.start # the engine's own lines through Tasker.logger
        native.start
        @native = native
        @pool = Array.new(@threads) { |i| Thread.new(i) { |n| serve(n) } }
      end
      self
    end

    # Stops: steps already running finish (within worker.shutdown_grace_seconds),
    # then the threads end. Safe to call twice.
    def stop
      native, pool = @lock.synchronize { [@native, @pool] }
      return self unless native

      native.stop
      pool.each(&:join)
      self
    end

    def running?
      !@native.nil? && @native.running?
    end

    # Starts, serves until SIGINT or SIGTERM (or until every thread died), then
    # stops cleanly.
    def run
      signal = nil
      previous = {}
      %w[INT TERM].each { |sig| previous[sig] = trap(sig) { signal = sig } }
      start
      sleep 0.1 until signal || @pool.none?(&:alive?)
      log(:info, "stopping on SIG#{signal}") if signal
      stop
    ensure
      previous.each { |sig, handler| trap(sig, handler || "DEFAULT") }
    end

    private

    def serve(index)
      Thread.current.name = "tasker-worker-#{index}"
      loop do
        step = begin
          @native.next_step(@poll_interval)
        rescue StoppedError
          break
        end
        next if step.nil?

        Dispatch.run(@registry, step)
      end
    rescue StandardError => e
      log(:error, "worker thread failed: #{e.class}: #{e.message}")
      raise
    end

    def log(level, message)
      (@logger || Tasker.logger).public_send(level, message)
    end
  end
end
