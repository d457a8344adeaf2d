#!/usr/bin/env bash
# Start a JACK server on its dummy driver (a real audio clock, no sound card) unless one runs.
# Prints the PID of the server it started, or nothing when one was already running.
set -euo pipefail
rate="${JACK_RATE:-48000}"; period="${JACK_PERIOD:-64}"
# jackd sizes its shared segment, which every client maps and keeps resident, by its port limit:
# 2048 ports (its default) cost each client 103 MiB, 256 cost 45 MiB; a drum machine needs a few
# dozen (bench/rest.py)
port_max="${JACK_PORT_MAX:-256}"
if jack_lsp >/dev/null 2>&1; then exit 0; fi
log="${TMPDIR:-/tmp}/dkvae-jackd.log"  # bench/harness/live.py reads it (LateClients)
jackd --port-max "$port_max" -d dummy -r "$rate" -p "$period" </dev/null >"$log" 2>&1 &
pid=$!
if ! jack_wait -w -t 10 >/dev/null 2>&1; then
  echo "jack-dummy: jackd did not start; its log:" >&2; cat "$log" >&2; exit 1
fi
echo "$pid"
