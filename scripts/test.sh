#!/usr/bin/env bash
# Install what the tests need, start a JACK dummy server if none runs, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# Small real drum kits from Debian (92 MB) for the bank and importer tests; the tests unpack them.
# Not the large SoundFonts of the default bank (fluid-soundfont-gm, musescore-general-...,
# opl3-soundfont).
export DKVAE_TEST_KITS="${DKVAE_TEST_KITS:-$PWD/.cache/kits}"
test_kits=(hydrogen-data avldrums.lv2-soundfont lmms-common timgm6mb-soundfont csound-soundfont
  sonic-pi-samples freepats)
if command -v apt-get >/dev/null; then
  mkdir -p "$DKVAE_TEST_KITS"
  for p in "${test_kits[@]}"; do
    compgen -G "$DKVAE_TEST_KITS/${p}_*.deb" >/dev/null && continue
    (cd "$DKVAE_TEST_KITS" && apt-get download "$p" >/dev/null 2>&1) \
      || echo "test: could not fetch $p; the tests that need it skip"
  done
fi
# Period 256, not 64: see TEST_PERIOD in bench/harness/live.py.
export JACK_PERIOD="${JACK_PERIOD:-256}"
jack_pid=$(bash scripts/jack-dummy.sh)
trap '[ -n "$jack_pid" ] && kill "$jack_pid" 2>/dev/null || true' EXIT
.venv/bin/python -m pytest "$@"
