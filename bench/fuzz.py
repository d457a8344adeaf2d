"""Fuzz a running daemon: 100,000 hostile OSC datagrams and 20,000 MIDI messages (Hypothesis).

Method: a daemon on the sine test model, its output captured by a JACK client. First the same
length of time with the daemon idle, counting xruns (the baseline); then the fuzz: random
bytes, truncated and oversized packets, valid addresses with wrong types or counts, NaN, inf
and huge numbers, bundles nested 300 deep, hostile paths (tests/fuzzing.py), then random MIDI
bytes, SysEx, running status and cut messages sent raw over JACK MIDI. Afterwards: is the daemon
alive, did every datagram arrive and get counted, is the captured audio finite and under full
scale, were there more xruns than idle, does a valid trigger still play.

    .venv/bin/python bench/fuzz.py [--datagrams 100000] [--midi 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fuzzing import datagrams, draw_examples, midi_messages, send_examples
from live_harness import Capture, Daemon, jack_server
from synth_models import sine_decoder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datagrams", type=int, default=100_000)
    parser.add_argument("--midi", type=int, default=20_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/fuzz.json"))
    args = parser.parse_args()
    with jack_server(), tempfile.TemporaryDirectory() as tmp:
        model = sine_decoder(Path(tmp) / "decoder.onnx")
        osc_examples = draw_examples(datagrams, args.datagrams)
        midi_examples = draw_examples(midi_messages, args.midi)
        daemon = Daemon(model, "--kit-dir", tmp)
        try:
            daemon.wait_ready()
            capture = Capture(daemon.audio_port_pattern, seconds=900)
            capture.wait_until(1)
            started = time.monotonic()
            xruns0 = daemon.osc.status()["xruns"]
            send_examples(daemon, osc_examples, midi_examples, pause=0.01)
            sent, midi_sent = len(osc_examples), len(midi_examples)
            fuzz_seconds = time.monotonic() - started
            daemon.osc.send("/dkvae/reply_to", daemon.osc.sock.getsockname()[1])
            time.sleep(1.1)
            status = daemon.osc.status()
            fuzz_xruns = status["xruns"] - xruns0
            played = capture.buffer[: capture.end]
            finite = bool(np.all(np.isfinite(played)))
            peak = float(np.max(np.abs(played))) if played.size else 0.0
            daemon.osc.send("/dkvae/stop")
            time.sleep(0.3)
            still_plays = (
                float(
                    np.max(np.abs(capture.hit(lambda: daemon.osc.send("/dkvae/trigger", 36, 127))))
                )
                > 0.1
            )
            # The idle baseline: the same length of time, nothing sent.
            idle0 = daemon.osc.status()["xruns"]
            time.sleep(min(fuzz_seconds, 120))
            idle_xruns = daemon.osc.status()["xruns"] - idle0
            alive = daemon.proc.poll() is None
            capture.close()
        finally:
            daemon.stop()
    dropped = {k: v for k, v in status.items() if k.startswith("dropped")}
    result = {
        "datagrams_sent": sent,
        "datagrams_received": status["osc_received"],
        "midi_sent": midi_sent,
        "midi_received": status["midi_received"],
        "dropped": dropped,
        "seconds": round(fuzz_seconds, 1),
        "xruns_fuzz": fuzz_xruns,
        "xruns_idle_same_time": idle_xruns,
        "audio_finite": finite,
        "audio_peak": peak,
        "daemon_alive": alive,
        "valid_trigger_plays_after": still_plays,
        "traceback_in_log": "Traceback" in daemon.log(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    for key, value in result.items():
        print(f"{key:28} {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
