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
  # Build with scripts/build-gem.sh: it stages the Rust crates the extension
  # needs into ext/tasker/vendor/ of a copy of this directory (the repository
  # itself vendors nothing).
  raise "build the gem with scripts/build-gem.sh" unless File.directory?(File.join(__dir__, "ext/tasker/vendor/abi"))

  s.files = Dir.chdir(__dir__) do
    Dir[
      "README.md", "lib/**/*.rb",
      "ext/tasker/extconf.rb", "ext/tasker/Cargo.toml", "ext/tasker/Cargo.lock", "ext/tasker/src/**/*.rs",
      "ext/tasker/vendor/**/*"
    ].reject { |f| File.directory?(f) }
  end
  s.require_paths = ["lib"]
  s.extensions = ["ext/tasker/extconf.rb"]
end
