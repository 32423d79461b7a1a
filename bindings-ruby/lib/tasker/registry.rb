# frozen_string_literal: true

module Tasker
  # Handlers by name. A handler is a StepHandler subclass (a new instance
  # serves each step), or anything that responds to #call(context) (a Proc, an
  # object). Thread-safe.
  class Registry
    def initialize
      @handlers = {}
      @lock = Mutex.new
    end

    def register(name, handler = nil, &block)
      handler ||= block
      name = name.to_s
      raise ArgumentError, "handler name must not be empty" if name.empty?
      unless handler.respond_to?(:call) || (handler.is_a?(Class) && handler <= StepHandler)
        raise ArgumentError, "handler for #{name.inspect} must be a Tasker::StepHandler subclass " \
                             "or respond to call(context), got #{handler.inspect}"
      end
      @lock.synchronize { @handlers[name] = handler }
      handler
    end

    def unregister(name)
      @lock.synchronize { @handlers.delete(name.to_s) }
    end

    def [](name)
      @lock.synchronize { @handlers[name.to_s] }
    end

    def names
      @lock.synchronize { @handlers.keys }
    end

    def empty?
      @lock.synchronize { @handlers.empty? }
    end

    def clear
      @lock.synchronize { @handlers.clear }
    end

    # The callable for `name` (an instance for a StepHandler class), or nil.
    def resolve(name)
      handler = self[name]
      handler.is_a?(Class) ? handler.new : handler
    end
  end
end
