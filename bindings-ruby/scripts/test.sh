#!/usr/bin/env bash
# The Ruby gem's tests (scripts/test.sh runs this): the installed-gem smoke
# test (the platform gem: `rake native gem` builds the extension once, in the
# workspace, and packs it; `gem install --local` compiles nothing; then a
# workflow), then the rspec suite (unit specs, and integration specs against
# fresh databases) on that same extension.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/smoke-gem.sh" "$here/lib/tasker/tasker_rb.so"
(cd "$here" && rspec --format progress spec)
