#!/usr/bin/env bash
# Builds the extension (release) in the repository's workspace and puts it
# where `ruby -I lib -r tasker` finds it: lib/tasker/tasker_rb.so
# (`rake compile`, see bindings-ruby/Rakefile).
set -euo pipefail
cd "$(dirname "$0")/.."
exec rake compile
