#!/usr/bin/env bash
# Install what the tests need, start a JACK dummy server if none runs, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# Two small real drum kits from Debian (31 MB) for the bank and importer tests; the tests unpack them.
export DKVAE_TEST_KITS="${DKVAE_TEST_KITS:-$PWD/.cache/kits}"
if [ ! -e "$DKVAE_TEST_KITS/.fetched" ] && command -v apt-get >/dev/null; then
  mkdir -p "$DKVAE_TEST_KITS"
  (cd "$DKVAE_TEST_KITS" && apt-get download hydrogen-data avldrums.lv2-soundfont >/dev/null) \
    && touch "$DKVAE_TEST_KITS/.fetched" || echo "test: could not fetch the test kits; their tests skip"
fi
# Period 256, not 64: see TEST_PERIOD in tests/live_harness.py.
export JACK_PERIOD="${JACK_PERIOD:-256}"
jack_pid=$(bash scripts/jack-dummy.sh)
trap '[ -n "$jack_pid" ] && kill "$jack_pid" 2>/dev/null || true' EXIT
.venv/bin/python -m pytest "$@"
