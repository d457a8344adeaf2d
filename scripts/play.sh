#!/usr/bin/env bash
# Install what is missing, then run the daemon on the shipped default model.
# Any arguments go to dkvae-live (see `dkvae-live --help`). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh live
jack_pid=""
if ! jack_lsp >/dev/null 2>&1 && ! grep -q '[0-9]' /proc/asound/cards 2>/dev/null; then
  echo "play: no sound card here; starting a JACK server on its dummy driver (you will hear nothing)"
  jack_pid=$(bash scripts/jack-dummy.sh)
fi
trap '[ -n "$jack_pid" ] && kill "$jack_pid" 2>/dev/null || true' EXIT
.venv/bin/dkvae-live "$@"
