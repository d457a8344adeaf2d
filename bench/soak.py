"""Soak: play a live set for --minutes (default 10) and watch memory, xruns, lost notes.

16th notes at 140 BPM over a kit of 8 pads from MIDI, latent moves at 100 per second over OSC,
and every minute a kit reload (the kit file is rewritten) and a model swap (between two test
models). Resident memory is read from /proc after a 30 s warm-up and at the end; xruns are
compared with an idle baseline of one minute taken first. Notes are counted where they could be
lost: sent, received by the daemon's MIDI input, played by the audio callback, and hits on a
pad with no sound; xruns also in the 2 s after each reload and swap.

    .venv/bin/python bench/soak.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from live_harness import Daemon, LateClients, MidiSenderProcess, jack_server
from synth_models import CLASSES, sine_decoder

from dkvae_live.kit import Kit, save_kit
from dkvae_live.pads import default_pads

PADS = [36, 38, 42, 46, 41, 45, 49, 51]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=Path("bench/results/soak.json"))
    args = parser.parse_args()
    with jack_server(), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = [sine_decoder(root / "a" / "decoder.onnx"),
                  sine_decoder(root / "b" / "decoder.onnx", base_hz=150.0)]
        kit_path = root / "kits" / "soak.toml"
        kit_path.parent.mkdir()
        pads = default_pads(CLASSES, 8)
        save_kit(Kit("soak", pads), kit_path)
        daemon = Daemon(models[0], "--kit", str(kit_path), "--allow-dir", str(root))
        try:
            daemon.wait_ready()
            osc = daemon.osc
            # The MIDI sender is a JACK client of its own process (see MidiSenderProcess);
            # it is there for the idle baseline too, or the baseline has one client fewer.
            midi = MidiSenderProcess(daemon.midi_port)
            x0 = osc.status()["xruns"]
            late_idle = LateClients()
            time.sleep(args.idle_seconds)
            idle_xruns = osc.status()["xruns"] - x0
            late_during_idle = late_idle.counts(daemon.client_name)
            late_playing = LateClients()
            sixteenth = 60.0 / 140 / 4
            start = time.monotonic()
            next_note = next_move = start
            next_minute = start + 60
            notes = moves = swaps = 0
            rss_warm = None
            begin = osc.status()
            x1 = begin["xruns"]
            rss_minutes: list[float] = []
            xruns_after_swaps = 0  # in the 2 s after each kit reload and model swap
            swap_check: float | None = None
            swap_xruns = 0
            while (now := time.monotonic()) - start < args.minutes * 60:
                if now >= next_note:
                    midi.note_on(PADS[notes % len(PADS)], 60 + notes % 64)
                    notes += 1
                    next_note += sixteenth
                if now >= next_move:
                    pad = PADS[moves % len(PADS)]
                    osc.send("/dkvae/pad/dim", pad, moves % 8, math.sin(moves / 50.0))
                    moves += 1
                    next_move += 0.01
                if swap_check is not None and now >= swap_check:
                    xruns_after_swaps += osc.status()["xruns"] - swap_xruns
                    swap_check = None
                if now >= next_minute:
                    rss_minutes.append(round(rss_mib(daemon.proc.pid), 1))
                    swap_xruns = osc.status()["xruns"]
                    swap_check = now + 2.0
                    pads[36] = replace(pads[36], gain=0.5 + 0.5 * (swaps % 2))
                    save_kit(Kit("soak", pads), kit_path)  # the daemon reloads it
                    swaps += 1
                    osc.send("/dkvae/model/load", str(models[swaps % 2].parent))
                    next_minute += 60
                if rss_warm is None and now - start > 30:
                    rss_warm = rss_mib(daemon.proc.pid)
                time.sleep(max(0.0, min(next_note, next_move) - time.monotonic()))
            time.sleep(1.0)
            midi.close()
            rss_end = rss_mib(daemon.proc.pid)
            osc.drain()
            status = osc.status()
            seconds = time.monotonic() - start
            late_during_playing = late_playing.counts(daemon.client_name)
        finally:
            daemon.stop()
    result = {
        "minutes": round(seconds / 60, 2),
        "notes_sent": notes,
        "notes_received": status["notes_received"] - begin["notes_received"],
        "notes_played": status["notes_played"] - begin["notes_played"],
        "notes_without_sound": status["notes_without_sound"] - begin["notes_without_sound"],
        "latent_moves_sent": moves,
        "kit_reloads_and_model_swaps": swaps,
        "rss_after_warmup_mib": round(rss_warm or 0.0, 1),
        "rss_end_mib": round(rss_end, 1),
        "rss_growth_mib": round(rss_end - (rss_warm or rss_end), 2),
        "rss_each_minute_mib": rss_minutes,
        "xruns_playing": status["xruns"] - x1,
        "xruns_in_2s_after_swaps": xruns_after_swaps,
        "xruns_idle_baseline": idle_xruns,
        "idle_baseline_seconds": args.idle_seconds,
        "xruns_per_minute_playing": round((status["xruns"] - x1) / (seconds / 60), 1),
        "xruns_per_minute_idle": round(idle_xruns / (args.idle_seconds / 60), 1),
        "late_clients_playing": late_during_playing,
        "late_clients_idle": late_during_idle,
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
