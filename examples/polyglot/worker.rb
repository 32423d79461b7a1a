# frozen_string_literal: true

# The order-pricing example's Ruby worker: the native step `shipping`
# (handler `order.shipping`) in pool `ruby`.
#
#   ruby -I bindings-ruby/lib examples/polyglot/worker.rb   # or with the gem installed
#
# Database: DATABASE_URL, else the local default database.
# POLYGLOT_WORKER_CONFIG may hold TOML laid over the built-in configuration.
# Stops on SIGINT/SIGTERM after the steps in flight finish.
require "tasker"

module Polyglot
  POOL = "ruby" # the template's `pool: ruby`

  # Shipping in cents: a base per destination plus a price per item.
  class Shipping < Tasker::StepHandler
    # country => [base, per item]; anything else ships internationally.
    RATES = {
      "US" => [500, 150],
      "CA" => [1200, 250],
      "MX" => [1200, 250]
    }.freeze
    INTERNATIONAL = [2500, 400].freeze

    def call(context)
      items = context.input["items"]
      unless items.is_a?(Array) && !items.empty?
        raise Tasker::PermanentError, "input `items` must be a non-empty list"
      end

      quantity = items.each_with_index.sum do |item, i|
        qty = item.is_a?(Hash) ? item["qty"] : nil
        raise Tasker::PermanentError, "items[#{i}].qty must be a positive integer" unless qty.is_a?(Integer) && qty.positive?

        qty
      end
      base, per_item = RATES.fetch(context.input["country"], INTERNATIONAL)
      # Into this attempt's log (`tasker step logs <task> shipping`).
      context.logger.info("hello from ruby: #{quantity} items to #{context.input['country']}")
      { "value" => base + (per_item * quantity), "lang" => "ruby" }
    end
  end
end

Tasker.register("order.shipping", Polyglot::Shipping)

if $PROGRAM_NAME == __FILE__
  config = ENV.fetch("POLYGLOT_WORKER_CONFIG", "")
  worker = Tasker::Worker.new(pools: [Polyglot::POOL], config: config.empty? ? nil : config, threads: 2)
  $stdout.puts "worker.rb: serving pool #{Polyglot::POOL.inspect} (order.shipping), pid #{Process.pid}"
  $stdout.flush
  worker.run
  $stdout.puts "worker.rb: stopped"
end
