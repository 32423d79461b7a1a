# frozen_string_literal: true

require "rbconfig"
require_relative "lib/tasker/version"

# Two gems come from this file, by what its directory holds (the Rakefile
# stages either; the repository itself vendors nothing):
# - the platform gem (e.g. tasker-0.1.0-x86_64-linux.gem), when
#   lib/tasker/tasker_rb.so is there: the compiled extension is inside, and
#   `gem install` compiles nothing (`rake native gem`);
# - the source gem (tasker-0.1.0.gem), when ext/tasker/vendor/ holds the Rust
#   crates the extension needs: `gem install` runs cargo (`rake gem`, which
#   runs scripts/build-gem.sh).
here = __dir__
vendored = File.directory?(File.join(here, "ext/tasker/vendor/abi"))
extension = "lib/tasker/tasker_rb.#{RbConfig::CONFIG['DLEXT']}"
native = !vendored && File.file?(File.join(here, extension))
raise "build the gem with `rake native gem` or `rake gem` (bindings-ruby/Rakefile)" unless vendored || native

Gem::Specification.new do |s|
  s.name = "tasker"
  s.version = Tasker::VERSION
  s.summary = "Ruby handlers and a client for the tasker workflow orchestrator"
  s.authors = ["tasker developers"]
  s.license = "Apache-2.0"
  s.require_paths = ["lib"]
  ruby_files = Dir.chdir(here) { Dir["README.md", "lib/**/*.rb"] }
  if native
    s.description = "Write tasker step handlers in Ruby and create and watch tasks. " \
                    "A Rust extension (magnus) over libtasker, compiled for this platform and Ruby."
    s.platform = Gem::Platform.local
    # The extension is built against this Ruby's headers: only its minor version loads it.
    s.required_ruby_version = "~> #{RUBY_VERSION[/\A\d+\.\d+/]}.0"
    s.files = ruby_files + [extension]
  else
    s.description = "Write tasker step handlers in Ruby and create and watch tasks. " \
                    "A Rust extension (magnus) over libtasker; built with cargo at install time."
    s.required_ruby_version = ">= 3.0"
    s.files = ruby_files + Dir.chdir(here) do
      Dir[
        "ext/tasker/extconf.rb", "ext/tasker/Cargo.toml", "ext/tasker/Cargo.lock", "ext/tasker/src/**/*.rs",
        "ext/tasker/vendor/**/*"
      ].reject { |f| File.directory?(f) }
    end
    s.extensions = ["ext/tasker/extconf.rb"]
  end
end
