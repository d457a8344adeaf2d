"""Fuzz a running daemon: 100,000 hostile OSC datagrams and 20,000 MIDI messages (Hypothesis).

Method: a daemon on the sine test model, its output captured by a JACK client. First the same
length of time with the daemon idle, counting xruns (the baseline); then the fuzz: random
bytes, truncated and oversized packets, valid addresses with wrong types or counts, NaN, inf
and huge numbers, bundles nested 300 deep, hostile paths (tests/fuzzing.py), then random MIDI
bytes, SysEx, running status and cut messages sent raw over JACK MIDI. Every 2000 datagrams a
valid trigger and a valid latent for pad 37 go in between, and a last latent after the fuzz.
Afterwards: is the daemon alive, did every datagram arrive and get counted, is the captured
audio finite and under full scale, were there more xruns than idle, were the valid triggers
played (the fuzz's own valid triggers count too: a lower bound) and does pad 37 hold the last
latent sent, and does a valid trigger still play. Last, a control: the same MIDI flood from the
same sender into jack_midi_dump (a C client) while the daemon idles, so that the xruns of the
benchmark's own sender can be told from the daemon's.

    .venv/bin/python bench/fuzz.py [--datagrams 100000] [--midi 20000]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fuzzing import caught_up_status, datagrams, draw_examples, midi_messages
from live_harness import Capture, Daemon, LateClients, MidiSender, OscPeer, jack_server
from synth_models import sine_decoder

PROBE_EVERY = 2000  # datagrams between two valid messages


def send_datagrams(port: int, examples: list[bytes]) -> None:
    """In a child process: the datagrams, a 10 ms pause every 200, and every PROBE_EVERY a valid
    trigger and a valid latent for pad 37; a last latent after them."""
    peer = OscPeer(port)
    for i, datagram in enumerate(examples, 1):
        peer.send_raw(datagram)
        if i % PROBE_EVERY == 0:
            peer.send("/dkvae/trigger", 36, 100)
            peer.send("/dkvae/pad/latent", 37, *probe_latent(i))
        if i % 200 == 0:
            time.sleep(0.01)
    peer.send("/dkvae/pad/latent", 37, *probe_latent(len(examples) + 1))
    peer.close()


def send_midi(port: str, examples: list[bytes]) -> None:
    """In a child process: the raw MIDI messages, 8 per JACK cycle, then wait for them to go."""
    midi = MidiSender(port, per_cycle=8)
    for message in examples:
        midi.send(list(message))
    midi.flush(timeout=120)
    time.sleep(0.5)
    midi.close()


def in_child(target: object, *args: object) -> None:
    """Run `target(*args)` in a forked child and wait for it. The senders run there: this
    process has a JACK client (the capture) whose Python callback would wait for its GIL
    behind a sending loop, and its late cycles would count as the daemon's xruns."""
    child = multiprocessing.get_context("fork").Process(target=target, args=args)
    child.start()
    child.join()


def midi_flood_elsewhere(daemon: Daemon, examples: list[bytes]) -> dict[str, object] | None:
    """The control for the MIDI part: the same flood from the same sender, into a C client
    (jack_midi_dump) instead of the daemon, which idles. Its xruns are the benchmark's own
    (a Python JACK client sending 8 messages a cycle) and the machine's, not the daemon's.
    None without jack_midi_dump."""
    if shutil.which("jack_midi_dump") is None:
        return None
    name = f"dkvae-fuzz-sink-{os.getpid()}"
    sink = subprocess.Popen(
        ["jack_midi_dump", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(1.0)
        before = daemon.osc.status()["xruns"]
        late = LateClients()
        started = time.monotonic()
        in_child(send_midi, f"{name}:input", examples)
        return {
            "xruns": daemon.osc.status()["xruns"] - before,
            "seconds": round(time.monotonic() - started, 1),
            "late_clients": late.counts(daemon.client_name),
        }
    finally:
        sink.terminate()
        sink.wait()


def probe_latent(count: int) -> list[float]:
    """A latent no fuzz example is likely to send, different for each probe."""
    return [round(((count * (dim + 3)) % 997) / 997 * 4.0 - 2.0, 4) for dim in range(8)]


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
        # Hundreds of MB of examples: keep this process's garbage collector from walking them
        # while the capture callback waits for the GIL.
        gc.collect()
        gc.freeze()
        daemon = Daemon(model, "--kit-dir", tmp)
        try:
            daemon.wait_ready()
            capture = Capture(daemon.audio_port_pattern, seconds=900)
            capture.wait_until(1)
            started = time.monotonic()
            before = daemon.osc.status()
            xruns0 = before["xruns"]
            late_fuzz = LateClients()
            in_child(send_datagrams, daemon.osc_port, osc_examples)
            probes = len(osc_examples) // PROBE_EVERY
            last_latent = probe_latent(len(osc_examples) + 1)
            osc_status = caught_up_status(daemon, attempts=300)
            osc_seconds = time.monotonic() - started
            in_child(send_midi, daemon.midi_port, midi_examples)
            sent, midi_sent = len(osc_examples), len(midi_examples)
            fuzz_seconds = time.monotonic() - started
            status = caught_up_status(daemon, attempts=300)
            caught_up_seconds = time.monotonic() - started - fuzz_seconds
            fuzz_xruns = status["xruns"] - xruns0
            late_during_fuzz = late_fuzz.counts(daemon.client_name)
            triggers_played = status["notes_played"] - before["notes_played"]
            daemon.osc.drain()
            daemon.osc.send("/dkvae/pad/get", 37)
            pad = daemon.osc.receive(timeout=5.0)
            latent_kept = pad.address == "/dkvae/pad" and np.allclose(
                pad.params[4:], last_latent, atol=1e-4
            )
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
            late_idle = LateClients()
            time.sleep(min(fuzz_seconds + caught_up_seconds, 120))
            idle_xruns = daemon.osc.status()["xruns"] - idle0
            late_during_idle = late_idle.counts(daemon.client_name)
            control = midi_flood_elsewhere(daemon, midi_examples)
            alive = daemon.proc.poll() is None
            capture.close()
        finally:
            daemon.stop()
    dropped = {k: v for k, v in status.items() if k.startswith("dropped")}
    result = {
        "datagrams_sent": sent,
        "datagrams_received": status["osc_received"],
        "valid_triggers_in_between": probes,
        "notes_played_during": triggers_played,
        "last_valid_latent_kept": latent_kept,
        "midi_sent": midi_sent,
        "midi_received": status["midi_received"],
        "dropped": dropped,
        "seconds": round(fuzz_seconds, 1),
        "seconds_until_status_answered": round(caught_up_seconds, 1),
        "xruns_fuzz": fuzz_xruns,
        "xruns_osc_part": osc_status["xruns"] - xruns0,
        "osc_part_seconds": round(osc_seconds, 1),
        "xruns_midi_part": fuzz_xruns - (osc_status["xruns"] - xruns0),
        "midi_part_seconds": round(fuzz_seconds - osc_seconds, 1),
        "xruns_idle_same_time": idle_xruns,
        "idle_seconds": round(min(fuzz_seconds + caught_up_seconds, 120), 1),
        "late_clients_fuzz": late_during_fuzz,
        "late_clients_idle": late_during_idle,
        "control_midi_into_jack_midi_dump": control,
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
