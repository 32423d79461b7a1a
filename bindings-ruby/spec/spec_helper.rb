# frozen_string_literal: true

$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "tasker"
require "securerandom"

# Fresh databases for integration specs: each one is created with a unique
# name and dropped afterwards. The server comes from DATABASE_URL (its
# database part is ignored), else the local default.
module TestDatabase
  module_function

  def server
    url = ENV.fetch("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    url.sub(%r{/[^/]*\z}, "")
  end

  def psql(sql)
    system("psql", "#{server}/postgres", "-qXc", sql, out: File::NULL, exception: true)
  end

  def create
    name = "tasker_rb_#{SecureRandom.hex(6)}"
    psql("CREATE DATABASE #{name}")
    [name, "#{server}/#{name}"]
  end

  def drop(name)
    psql("DROP DATABASE IF EXISTS #{name} WITH (FORCE)")
  end
end

EXAMPLES = File.expand_path("../../examples", __dir__)

# Settings for fast tests: a short shutdown grace and a small retry floor.
TEST_CONFIG = <<~TOML
  [worker]
  shutdown_grace_seconds = 5
TOML

RSpec.configure do |c|
  c.disable_monkey_patching!
  c.order = :defined
end
