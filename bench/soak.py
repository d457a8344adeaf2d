"""Soak: play a live set for --minutes (default 10) and watch memory, xruns, lost notes.

16th notes at 140 BPM over a kit of 8 pads from MIDI, latent moves at 100 per second over OSC,
and at the start of every minute after the first a kit reload (the kit file is rewritten) and
a model swap (between two test models). After each minute played the daemon idles for
--idle-window seconds: those windows are the idle baseline. On a shared VM the idle xrun rate
moves by a factor of 5 within minutes, so a baseline taken once, before the set, is compared
with a different machine; interleaved, both kinds of window share its noise (compare_xruns).
Resident memory is read from /proc at the end of the first idle window (warmed up: a minute
played) and of the last, in the same state: every pad rendered in full (a pad that is moving
plays a one-layer draft, a fifth of the memory), no voice sounding; and after every idle
window, for the trend (a least-squares slope). Notes are counted where they could be lost:
sent, written into JACK by the sender (a C client, harness/raw_midi.py), received by the daemon's
MIDI input, played by the audio callback, and hits on a pad with no sound; xruns also in the
2 s after each reload and swap.

    .venv/bin/python bench/soak.py [--minutes 10] [--idle-window 30] [--model sine|default]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import PERIOD, ProcessMeter, two_model_folders
from harness.live import Daemon, LateClients, OscPeer, jack_server, running_jackd
from harness.raw_midi import RawMidiSender
from harness.synth_models import CLASSES
from harness.xruns import compare_xruns

from dkvae_live.kit import DEFAULT_KIT, Kit, load_kit, save_kit
from dkvae_live.model import Decoder
from dkvae_live.pads import Pad, default_pads

PADS = [36, 38, 42, 46, 41, 45, 49, 51]
SIXTEENTH = 60.0 / 140 / 4
MOVE_EVERY = 0.01


def rss_trend(readings: list[float], minutes: float) -> float | None:
    """The least-squares slope of the readings after each idle window, in MiB per 10 minutes
    played. The readings move by a few MiB from one window to the next (the two models'
    onnxruntime arenas differ), so two of them cannot show growth of a few MiB."""
    if len(readings) < 3:
        return None
    played = np.linspace(minutes / len(readings), minutes, len(readings))
    return round(10 * float(np.polyfit(played, readings, 1)[0]), 2)


class LiveSet:
    """The set, played a stretch at a time; it counts what it sent."""

    def __init__(self, osc: OscPeer, midi: RawMidiSender) -> None:
        self.osc, self.midi = osc, midi
        self.notes = self.moves = 0

    def play(self, seconds: float, check_at: float | None = None) -> int | None:
        """Play for `seconds`; with `check_at`, the xruns in that many seconds from the start."""
        start = time.monotonic()
        next_note = next_move = start
        x0 = self.osc.status()["xruns"] if check_at is not None else 0
        checked: int | None = None
        while (now := time.monotonic()) - start < seconds:
            if now >= next_note:
                note, velocity = PADS[self.notes % len(PADS)], 60 + self.notes % 64
                self.midi.send([bytes([0x99, note, velocity])])
                self.notes += 1
                next_note += SIXTEENTH
            if now >= next_move:
                pad = PADS[self.moves % len(PADS)]
                self.osc.send("/dkvae/pad/dim", pad, self.moves % 8, math.sin(self.moves / 50.0))
                self.moves += 1
                next_move += MOVE_EVERY
            if check_at is not None and checked is None and now - start >= check_at:
                checked = self.osc.status()["xruns"] - x0
            time.sleep(max(0.0, min(next_note, next_move) - time.monotonic()))
        return checked


def reload_and_swap(
    osc: OscPeer, kit_path: Path, pads: dict[int, Pad], models: list[Path], count: int
) -> None:
    """Rewrite the kit file (the daemon reloads it) and load the other model."""
    pads[PADS[0]] = replace(pads[PADS[0]], gain=0.5 + 0.5 * (count % 2))
    save_kit(Kit("soak", pads), kit_path)
    osc.send("/dkvae/model/load", str(models[count % 2]))


def two_models(root: Path, which: str) -> tuple[list[Path], dict[int, Pad]]:
    """Two model folders to swap between, and the pads of the kit to play on them."""
    models = two_model_folders(root, which, second_hz=150.0)
    if which == "sine":
        return models, default_pads(CLASSES, 8)
    info = Decoder(models[0] / "decoder.onnx").info
    return models, dict(load_kit(DEFAULT_KIT, info.class_names, info.latent_size).pads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes played")
    parser.add_argument(
        "--idle-window", type=float, default=30.0, help="seconds idle after each minute played"
    )
    parser.add_argument(
        "--model",
        choices=["sine", "default"],
        default="sine",
        help="swap between two sine test models, or two copies of the shipped model (its kit)",
    )
    parser.add_argument("--period", type=int, default=PERIOD, help="JACK period, frames")
    parser.add_argument("--json", type=Path, default=Path("bench/results/soak.json"))
    args = parser.parse_args()
    with jack_server(period=args.period), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models, pads = two_models(root, args.model)
        kit_path = root / "kits" / "soak.toml"
        kit_path.parent.mkdir()
        save_kit(Kit("soak", pads), kit_path)
        daemon = Daemon(models[0], "--kit", str(kit_path), "--allow-dir", str(root))
        try:
            daemon.wait_ready()
            osc = daemon.osc
            # The MIDI sender is a C JACK client in a process of its own (harness/raw_midi.py),
            # which counts what it wrote into JACK; it stays for the idle windows too, or they
            # would have one client fewer.
            meter = ProcessMeter(daemon.proc.pid)
            midi = RawMidiSender(f"dkvae-soak-midi-{os.getpid()}", daemon.midi_port, 8)
            live = LiveSet(osc, midi)
            late_busy: Counter[str] = Counter()
            late_idle: Counter[str] = Counter()
            busy: list[tuple[int, float]] = []
            idle: list[tuple[int, float]] = []
            after_swaps: list[int] = []
            rss_windows: list[float] = []  # after each idle window
            begin = osc.status()
            minute, played = 0, 0.0
            while (left := args.minutes * 60 - played) > 0.5:
                seconds = min(60.0, left)
                played += seconds
                x0, t0, late = osc.status()["xruns"], time.monotonic(), LateClients()
                if minute:
                    reload_and_swap(osc, kit_path, pads, models, minute)
                    after_swaps.append(live.play(seconds, check_at=2.0) or 0)
                else:
                    live.play(seconds)
                time.sleep(1.0)  # the last sounds ring out, the last renders finish
                busy.append((osc.status()["xruns"] - x0, time.monotonic() - t0))
                late_busy.update(late.counts(daemon.client_name) or {})
                x0, t0, late = osc.status()["xruns"], time.monotonic(), LateClients()
                time.sleep(args.idle_window)
                idle.append((osc.status()["xruns"] - x0, time.monotonic() - t0))
                late_idle.update(late.counts(daemon.client_name) or {})
                rss_windows.append(round(meter.memory_mib()["rss_mib"], 1))
                minute += 1
            notes_written, _ = midi.report()
            server = running_jackd()
            midi.close()
            osc.drain()
            status = osc.status()
        finally:
            daemon.stop()
    xruns = compare_xruns(busy, idle)
    # warmed up: after the first minute played and its idle window; the end: after the last
    rss_warm, rss_end = (rss_windows[0], rss_windows[-1]) if rss_windows else (0.0, 0.0)
    result = {
        "minutes_played": round(played / 60, 2),
        "notes_sent": live.notes,
        "notes_written_to_jack": notes_written,
        "notes_received": status["notes_received"] - begin["notes_received"],
        "notes_played": status["notes_played"] - begin["notes_played"],
        "notes_without_sound": status["notes_without_sound"] - begin["notes_without_sound"],
        "latent_moves_sent": live.moves,
        "model": args.model,
        "period": args.period,
        "jackd": " ".join(server[1]) if server else None,  # -S: synchronous mode
        "kit_reloads_and_model_swaps": len(after_swaps),
        "rss_after_warmup_mib": rss_warm,
        "rss_end_mib": rss_end,
        "rss_growth_mib": round(rss_end - rss_warm, 2),
        "rss_after_each_idle_window_mib": rss_windows,
        "rss_trend_mib_per_10_minutes": rss_trend(rss_windows, args.minutes),
        "xruns": xruns,
        "xruns_per_window_playing": [x for x, _ in busy],
        "xruns_per_window_idle": [x for x, _ in idle],
        "xruns_in_2s_after_swaps": sum(after_swaps),
        "late_clients_playing": dict(late_busy),
        "late_clients_idle": dict(late_idle),
        "dropped": {k: v for k, v in status.items() if k.startswith("dropped")},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    for key, value in result.items():
        print(f"{key:28} {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
