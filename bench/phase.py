"""What a spectrogram model's phase costs and how it sounds: dkvae_live.phase against Griffin-Lim
from random phase, on real drum sounds, by the bake-off's mel distance (dkvae-eval's measure 1).

Method: each sound is read as the encoder reads it (mono, 44.1 kHz, trimmed, peak-normalised,
1 s); its exact STFT magnitudes (the model's n_fft/hop: 512/128 by default, the bake-off's design
b) are inverted by each method, and the result is compared with the sound. A model can do no
better than this with its own magnitudes. Time per sound is the median and p99 of inverting one
sound at a time, on one core (the process is pinned), as the render worker does for a draft.

    .venv/bin/python bench/phase.py SOUNDS... [--n-fft 512 --hop 128] [--json F]
    .venv/bin/python bench/phase.py --bank data/default-bank [--split test]

SOUNDS are audio files or folders of them; --bank takes one split of a bank (dkvae-bank).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS, conditions, table, write_json
from dkvae_training import yardstick as ys

from dkvae_live import phase
from dkvae_live.model import read_sound

RATE = 44100
AUDIO = {".wav", ".flac", ".ogg", ".aif", ".aiff"}
ITERATIONS = (0, 2, 4, 8, 16)
TIMED = 30  # sounds inverted one at a time for the timings


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO) if p.is_dir() else [p]
    return out


def _random_phase(mag: np.ndarray, n_fft: int, hop: int, iterations: int) -> np.ndarray:
    """Griffin-Lim from random phase (plain, no momentum): the daemon's method until now."""
    rng = np.random.default_rng(0)
    spec = mag * np.exp(2j * np.pi * rng.random(mag.shape))
    for _ in range(iterations):
        rebuilt = phase.stft(phase.istft(spec, n_fft, hop, RATE), n_fft, hop, mag.shape[1])
        spec = mag * rebuilt / np.maximum(np.abs(rebuilt), 1e-10)
    return phase.istft(spec, n_fft, hop, RATE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sounds", nargs="*", type=Path)
    parser.add_argument("--bank", type=Path, help="a bank folder: its --split's sounds")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n-fft", type=int, default=512)
    parser.add_argument("--hop", type=int, default=128)
    parser.add_argument("--json", type=Path, default=RESULTS / "phase.json")
    args = parser.parse_args()
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})
    files = _files(args.sounds)
    if args.bank:
        with open(args.bank / "manifest.csv", newline="") as f:
            files += [args.bank / r["path"] for r in csv.DictReader(f) if r["split"] == args.split]
    if not files:
        parser.error("no sounds: give SOUNDS or --bank")
    audio = np.stack([read_sound(f, RATE, RATE) for f in files])
    n_fft, hop = args.n_fft, args.hop
    mag = np.abs(phase.stft(audio, n_fft, hop, 1 + RATE // hop))
    methods: dict[str, Any] = {"random phase": lambda m: _random_phase(m, n_fft, hop, 0)}
    methods["Griffin-Lim 32 from random phase"] = lambda m: _random_phase(m, n_fft, hop, 32)
    for it in ITERATIONS:
        label = "gradient phase (draft)" if it == 0 else f"gradient + {it} fast Griffin-Lim"
        methods[label] = lambda m, it=it: phase.invert(m, n_fft, hop, RATE, it)
    rows, out = [], {}
    for label, method in methods.items():
        distance = ys.mel_distance(audio, method(mag), RATE)
        times = []
        for row in mag[:TIMED]:
            start = time.perf_counter()
            method(row[None])
            times.append((time.perf_counter() - start) * 1000)
        out[label] = {
            "mel_distance_db": float(np.mean(distance)),
            "ms_median": float(np.median(times)),
            "ms_p99": float(np.percentile(times, 99)),
        }
        r = out[label]
        rows.append(
            [label, f"{r['mel_distance_db']:.2f}", f"{r['ms_median']:.1f}", f"{r['ms_p99']:.1f}"]
        )
        print(rows[-1], flush=True)
    cond = conditions(pinned_cpu=cpu, sounds=len(audio), n_fft=n_fft, hop=hop)
    print(
        f"\nPhase from exact magnitudes, {len(audio)} sounds, {n_fft}/{hop}; "
        f"load {cond['load_average_1_5_15']}"
    )
    print(table(["method", "mel distance dB", "ms/sound median", "p99"], rows))
    write_json(args.json, {"methods": out, "conditions": cond})
    return 0


if __name__ == "__main__":
    sys.exit(main())
