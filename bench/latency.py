"""Trigger latency of a running daemon, measured from outside, in samples of the JACK clock.

Method: a JACK dummy server (started here unless one runs), the daemon as its own process on a
sine test model (or --model), a JACK client recording the daemon's output port. For each hit the
script reads the JACK frame time, sends the trigger (MIDI note-on over JACK MIDI, or an OSC
message over UDP), and finds the first captured sample over -60 dBFS after that frame.
latency = onset frame - frame at send. Hits are spaced 80 ms apart, with a random extra delay so
sends fall at every phase of the period.

It also sends a latent change, waits --gap ms, triggers, and checks from the captured pitch that
the hit plays the new sound.

    .venv/bin/python bench/latency.py [--hits 300] [--model DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import PERIOD
from harness.live import (
    Capture,
    Daemon,
    MidiSender,
    dominant_frequency,
    jack_server,
)
from harness.synth_models import expected_frequency, sine_decoder

PAD = 36


def summarise(values: list[int], rate: int) -> dict[str, float]:
    a = np.asarray(values, float)
    return {
        "hits": len(values),
        "median_samples": float(np.median(a)),
        "p99_samples": float(np.percentile(a, 99)),
        "max_samples": float(a.max()),
        "median_ms": float(np.median(a) * 1000 / rate),
        "p99_ms": float(np.percentile(a, 99) * 1000 / rate),
        "max_ms": float(a.max() * 1000 / rate),
    }


def measure(
    capture: Capture, send, hits: int, spacing: float = 0.08, window: float = 0.05
) -> tuple[list[int], int]:
    """Latencies in samples of `hits` triggers sent by `send()`, and how many made no sound.

    Each hit waits `spacing` s plus a random 0-10 ms (so sends fall at every phase of the
    period), then looks for the onset within `window` s of the send."""
    latencies, missed = [], 0
    for _ in range(hits):
        time.sleep(spacing + random.random() * 0.01)
        earliest, sent = capture.trigger_frame(), capture.now()
        send()
        # A send can land in the cycle under way, which began before now(): negative latency.
        onset = capture.onset(earliest, int(window * capture.rate))
        if onset is None:
            missed += 1
        else:
            latencies.append(onset - sent)
    return latencies, missed


def latent_changes(daemon: Daemon, capture: Capture, gap_s: float, trials: int) -> int:
    """How many of `trials` hits, sent `gap_s` after a latent change, play the new sound."""
    heard = 0
    latent = [0.0, -3.0] + [0.0] * 6
    for i in range(trials):
        latent[0] = 1.0 if i % 2 else 0.0
        time.sleep(0.08)
        sent = capture.trigger_frame()
        daemon.osc.send("/dkvae/pad/latent", PAD, *latent)
        time.sleep(gap_s)
        daemon.osc.send("/dkvae/trigger", PAD, 127)
        onset = capture.onset(sent, int(0.1 * capture.rate))
        if onset is None:
            continue
        got = dominant_frequency(capture.segment(onset, 1024), capture.rate)
        want = expected_frequency(latent[0], 0)
        heard += abs(got / want - 1) < 0.05
    return heard


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hits", type=int, default=300)
    parser.add_argument("--gap", type=float, default=5.0, help="ms from latent change to hit")
    parser.add_argument("--json", type=Path, default=Path("bench/results/latency.json"))
    args = parser.parse_args()
    with jack_server(period=PERIOD), tempfile.TemporaryDirectory() as tmp:
        model = sine_decoder(Path(tmp) / "decoder.onnx")
        daemon = Daemon(model)
        try:
            daemon.wait_ready()
            capture = Capture(daemon.audio_port_pattern)
            capture.wait_until(1)
            # A short decay (z[1] = -3: 10 ms) so that hits 80 ms apart never overlap.
            daemon.osc.send("/dkvae/pad/latent", PAD, 0.0, -3.0, *([0.0] * 6))
            time.sleep(0.3)
            midi = MidiSender(daemon.midi_port)
            midi_lat, midi_missed = measure(capture, lambda: midi.note_on(PAD, 127), args.hits)
            midi.close()
            osc_lat, osc_missed = measure(
                capture, lambda: daemon.osc.send("/dkvae/trigger", PAD, 127), args.hits
            )
            trials = 100
            heard = latent_changes(daemon, capture, args.gap / 1000, trials)
            status = daemon.osc.status()
            period = int(capture.client.blocksize)
            rate = capture.rate
            capture.close()
        finally:
            daemon.stop()
    result = {
        "conditions": {
            "sample_rate": rate,
            "period": period,
            "driver": "JACK dummy",
            "daemon_output_latency_ms": status["output_latency_ms"],
            "xruns_during_run": status["xruns"],
            "date": time.strftime("%Y-%m-%d"),
        },
        "midi": {**summarise(midi_lat, rate), "missed": midi_missed},
        "osc": {**summarise(osc_lat, rate), "missed": osc_missed},
        "latent_change": {"gap_ms": args.gap, "trials": trials, "new_sound_heard": heard},
    }
    print(
        f"JACK dummy, {rate} Hz, period {period} frames ({period * 1000 / rate:.2f} ms), "
        f"xruns during the run: {status['xruns']}"
    )
    print(f"{'trigger':8} {'hits':>5} {'median':>16} {'p99':>16} {'max':>16} {'missed':>6}")
    for name in ("midi", "osc"):
        r = result[name]
        print(
            f"{name:8} {r['hits']:5d} "
            f"{r['median_samples']:6.0f} ({r['median_ms']:5.2f} ms) "
            f"{r['p99_samples']:6.0f} ({r['p99_ms']:5.2f} ms) "
            f"{r['max_samples']:6.0f} ({r['max_ms']:5.2f} ms) {r['missed']:6d}"
        )
    print(f"latent change then hit {args.gap:g} ms later: new sound on {heard}/{trials} hits")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
