# frozen_string_literal: true

# Per-step dispatch overhead of a no-op Ruby handler versus a Rust one, in
# process (no database): a Rust thread hands each step to the abi's
# PullHandler (what the worker host does) and times the round trip until the
# outcome is back. The consumer is either a Rust thread that completes at once
# (the floor), or a Ruby thread running the gem's real dispatch path
# (next_step without the GVL, JSON context -> Tasker::Context, handler,
# JSON result, complete). N=20000 by default.
#
# Tasker::Native::Bench exists only in an extension built with the cargo
# feature `bench` (the gem and scripts/build-ext.sh build without it), so this
# script builds one first: release, cargo's output in $CARGO_TARGET_DIR (else
# target/), the library copied to <target>/ruby-bench/tasker/tasker_rb.so and
# loaded from there (lib/tasker and installed gems stay as they are).
# TASKER_BENCH_NO_BUILD=1 skips the build and uses the last one.
require "fileutils"
require "rbconfig"

gem_root = File.expand_path("..", __dir__)
target = File.expand_path(ENV.fetch("CARGO_TARGET_DIR", "") == "" ? File.join(gem_root, "..", "target") : ENV["CARGO_TARGET_DIR"])
bench_lib = File.join(target, "ruby-bench")
unless ENV["TASKER_BENCH_NO_BUILD"]
  warn "building the extension with --features bench into #{bench_lib} ..."
  system({ "RUBY" => RbConfig.ruby, "CARGO_TARGET_DIR" => target },
         "cargo", "build", "--release", "--locked", "--features", "bench",
         "--manifest-path", File.join(gem_root, "ext/tasker/Cargo.toml"), exception: true)
  FileUtils.mkdir_p(File.join(bench_lib, "tasker"))
  FileUtils.cp(File.join(target, "release", "libtasker_rb.#{RbConfig::CONFIG['SOEXT'] || 'so'}"),
               File.join(bench_lib, "tasker", "tasker_rb.#{RbConfig::CONFIG['DLEXT']}"))
end
# The extension from bench_lib, everything else from this checkout's lib/.
$LOAD_PATH.unshift(File.join(gem_root, "lib"))
$LOAD_PATH.unshift(bench_lib)
require "tasker"
abort "#{bench_lib}: the extension has no Tasker::Native::Bench" unless defined?(Tasker::Native::Bench)

N = Integer(ENV.fetch("N", "20000"))

def stats(nanos)
  s = nanos.sort
  pick = ->(q) { s[[(q * s.size).ceil - 1, 0].max] / 1000.0 }
  { median: pick[0.5], p99: pick[0.99], mean: s.sum / s.size / 1000.0 }
end

def ruby_run(n, registry)
  bench = Tasker::Native::Bench.new
  bench.start(n)
  done = 0
  idle_since = nil
  while done < n
    # nil: no step yet, or Ruby interrupted the wait (its unblocking function).
    step = bench.next_step(1.0)
    if step.nil?
      idle_since ||= Process.clock_gettime(Process::CLOCK_MONOTONIC)
      raise "no step within 10 s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) - idle_since > 10

      next
    end
    idle_since = nil
    Tasker::Dispatch.run(registry, step)
    done += 1
  end
  bench.join
end

registry = Tasker::Registry.new
registry.register("bench.noop") { |_ctx| nil }

# Warm up both paths.
Tasker::Native::Bench.rust_baseline(2000)
ruby_run(2000, registry)

rust = stats(Tasker::Native::Bench.rust_baseline(N))
ruby = stats(ruby_run(N, registry))

fmt = ->(name, s) { format("%-28s median %7.1f us   p99 %7.1f us   mean %7.1f us", name, s[:median], s[:p99], s[:mean]) }
puts "dispatch round trip, #{N} steps, in process (#{RUBY_DESCRIPTION.split(' ')[0, 2].join(' ')})"
puts fmt["Rust consumer (no-op)", rust]
puts fmt["Ruby handler (no-op)", ruby]
puts format("Ruby overhead over Rust: median +%.1f us, p99 +%.1f us", ruby[:median] - rust[:median], ruby[:p99] - rust[:p99])
