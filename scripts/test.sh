#!/usr/bin/env bash
# Install what the tests need, start a JACK dummy server if none runs, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
jack_pid=$(bash scripts/jack-dummy.sh)
trap '[ -n "$jack_pid" ] && kill "$jack_pid" 2>/dev/null || true' EXIT
.venv/bin/python -m pytest "$@"
