# frozen_string_literal: true

require_relative "lib/tasker/version"

Gem::Specification.new do |s|
  s.name = "tasker"
  s.version = Tasker::VERSION
  s.summary = "Ruby handlers and a client for the tasker workflow orchestrator"
  s.description = "Write tasker step handlers in Ruby and create and watch tasks. " \
                  "A Rust extension (magnus) over libtasker; built with cargo at install time."
  s.authors = ["tasker developers"]
  s.license = "Apache-2.0"
  s.required_ruby_version = ">= 3.0"
  # Built from the staged tree of scripts/build-gem.sh, where the Rust crates
  # the extension needs are vendored under vendor/.
  s.files = Dir[
    "README.md", "lib/**/*.rb",
    "ext/tasker/extconf.rb", "ext/tasker/Cargo.toml", "ext/tasker/Cargo.lock", "ext/tasker/src/**/*.rs",
    "vendor/**/*"
  ].reject { |f| File.directory?(f) }
  s.require_paths = ["lib"]
  s.extensions = ["ext/tasker/extconf.rb"]
end
