#!/usr/bin/env bash
# The Ruby gem's tests (scripts/test.sh runs this): build the extension
# (release), run the rspec suite (unit specs, and integration specs against
# fresh databases), then the installed-gem smoke test.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/build-ext.sh"
(cd "$here" && rspec --format progress spec)
"$here/scripts/smoke-gem.sh"
