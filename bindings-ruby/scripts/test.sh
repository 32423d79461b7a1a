#!/usr/bin/env bash
# The Ruby gem's tests (scripts/test.sh runs this): the installed-gem smoke
# test (gem build, gem install --local, a workflow), then the rspec suite (unit
# specs, and integration specs against fresh databases) on the extension that
# `gem install` compiled (one release build of the extension, not two; the
# gem is staged from the repository by scripts/build-gem.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/smoke-gem.sh" "$here/lib/tasker/tasker_rb.so"
(cd "$here" && rspec --format progress spec)
