"""Offline render speed: a 60 s General MIDI groove through `dkvae-live render`.

Method: the script writes a 60 s groove with mido (120 BPM, 30 bars on channel 10: kick,
snare with ghost notes, 16th closed hats with accents and open hats, a tom fill every 4th bar,
crash every 8 bars, ride in the second half; 660 notes), then runs
`dkvae-live render groove.mid --model M -o out.wav` --runs times as its own process. It
reports the wall time of the whole command (what a user waits: start-up, model load, the
render, the WAV write) and the render alone (the time `dkvae-live render` logs). Target
(issue 8 / the brief): under 2 s for the 60 s groove. Model: the shipped default model if
there is one, else the sine test model; kit: the shipped default kit.

    .venv/bin/python bench/offline_render.py [--runs 3] [--model DIR] [--profile] [--json F]

--profile also runs the render once under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mido
import soundfile
from common import RESULTS, ROOT, choose_model, conditions, stats, table, write_json

BPM = 120
BARS = 30  # 30 bars of 4/4 at 120 BPM: 60 s
TARGET_S = 2.0


def groove(path: Path) -> int:
    """Write the groove; returns its note count."""
    tpb = 480
    sixteenth = tpb // 4
    events: list[tuple[int, int, int]] = []  # (tick, note, velocity)
    for bar in range(BARS):
        base = bar * 16 * sixteenth
        fill = bar % 4 == 3
        for step in range(16):
            tick = base + step * sixteenth
            if fill and step >= 8:
                toms = (50, 48, 47, 45, 43, 41, 41, 38)
                events.append((tick, toms[step - 8], 90 + step))
                continue
            if step in (0, 7, 10) or (step == 14 and bar % 2):
                events.append((tick, 36, 118 if step == 0 else 100))
            if step in (4, 12):
                events.append((tick, 38, 115))
            elif step in (6, 11, 15) and bar % 2:
                events.append((tick, 38, 35))  # ghost notes
            if bar >= BARS // 2 and step % 4 == 0:
                events.append((tick, 51, 85))
            elif step == 14 and bar % 4 == 1:
                events.append((tick, 46, 90))
            else:
                events.append((tick, 42, 100 if step % 4 == 0 else 60 + 7 * (step % 3)))
        if bar % 8 == 0:
            events.append((base, 49, 120))
    events.append((BARS * 16 * sixteenth, 49, 110))  # the last crash at 60.0 s
    midi = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(BPM), time=0))
    messages: list[tuple[int, mido.Message]] = []
    for tick, note, velocity in events:
        messages.append((tick, mido.Message("note_on", channel=9, note=note, velocity=velocity)))
        messages.append(
            (tick + sixteenth // 2, mido.Message("note_off", channel=9, note=note, velocity=0))
        )
    messages.sort(key=lambda m: (m[0], m[1].type == "note_on"))
    last = 0
    for tick, message in messages:
        track.append(message.copy(time=tick - last))
        last = tick
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return len(events)


def render_once(midi: Path, model: Path, out: Path, profile: Path | None = None) -> dict[str, Any]:
    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    command += ["-m", "dkvae_live", "render", str(midi), "--model", str(model), "-o", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"dkvae-live render failed:\n{done.stderr}")
    match = re.search(r"rendered in ([0-9.]+) s", done.stderr)
    return {"wall_s": wall, "render_s": float(match.group(1)) if match else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS / "offline_render.json")
    args = parser.parse_args()
    cond = conditions()
    with tempfile.TemporaryDirectory() as tmp:
        model, model_desc = choose_model(Path(tmp), args.model)
        midi_path = RESULTS / "groove-60s.mid"
        notes = groove(midi_path)
        out = Path(tmp) / "groove.wav"
        runs = [render_once(midi_path, model, out) for _ in range(args.runs)]
        info = soundfile.info(str(out))
        top = None
        if args.profile:
            prof = RESULTS / "offline_render.prof"
            render_once(midi_path, model, out, prof)
            import io
            import pstats

            buffer = io.StringIO()
            pstats.Stats(str(prof), stream=buffer).sort_stats("cumulative").print_stats(25)
            top = buffer.getvalue()
    wall = stats([r["wall_s"] for r in runs])
    render = stats([r["render_s"] for r in runs])
    result = {
        "conditions": {
            **cond,
            "load_at_end": [round(x, 2) for x in os.getloadavg()],
            "model": model_desc,
            "kit": "shipped default kit",
            "midi": str(midi_path),
            "notes": notes,
            "runs": args.runs,
        },
        "audio_seconds": info.duration,
        "wall_s": wall,
        "render_s": render,
        "real_time_factor_wall": info.duration / wall["median"],
        "target_s": TARGET_S,
        "target_met_wall": wall["p99"] < TARGET_S,
        "target_met_render": render["p99"] < TARGET_S,
    }
    c = result["conditions"]
    print(
        f"\nOffline render of a {info.duration:.1f} s GM groove ({notes} notes), "
        f"{c['model']}; load {c['load_average_1_5_15']}"
    )
    print(
        table(
            ["", "runs", "median s", "p99 s", "max s", "x real time", f"< {TARGET_S:g} s"],
            [
                [
                    "dkvae-live render (whole command)",
                    wall["count"],
                    wall["median"],
                    wall["p99"],
                    wall["max"],
                    f"{info.duration / wall['median']:.0f}x",
                    "met" if result["target_met_wall"] else "MISSED",
                ],
                [
                    "  of which the render itself",
                    render["count"],
                    render["median"],
                    render["p99"],
                    render["max"],
                    f"{info.duration / render['median']:.0f}x",
                    "met" if result["target_met_render"] else "MISSED",
                ],
            ],
        )
    )
    if top:
        print(top)
        result["profile_top"] = top
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
