"""A pad's velocity layers, each given its phase in full or all started from the middle layer's
(dkvae_live.model.LAYER_ITERATIONS): how long a pad's layers take, and how close each sound's
own spectrum comes to the magnitudes it was made from (the phase's fault alone).

Method: every pad of the shipped default kit whose velocity moves its timbre; its
dkvae_live.renderer.VELOCITY_LAYERS latents rendered by `Decoder.render` as the render worker
renders a pad in full (floor at the worker's SILENCE), with `layers=1` (each layer's gradient
phase and PHASE_ITERATIONS of Griffin-Lim) and with `layers=VELOCITY_LAYERS`, in turn, on one
core. Closeness is issue 18's mel distance (dkvae_live.mel) between each layer's magnitudes and
the magnitudes of the STFT of its audio. Needs a log-magnitude model.

    .venv/bin/python bench/layer_phase.py [MODEL_DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from common import DEFAULT_MODEL_DIR, RESULTS, table, write_json

from dkvae_live.kit import DEFAULT_KIT, load_kit
from dkvae_live.model import Decoder
from dkvae_live.phase import spectrum_distance
from dkvae_live.renderer import SILENCE, VELOCITY_LAYERS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, default=RESULTS / "layer_phase.json")
    args = p.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    decoder = Decoder(args.model)
    info = decoder.info
    kit = load_kit(DEFAULT_KIT, info.class_names, info.latent_size)
    times: dict[int, list[float]] = {1: [], VELOCITY_LAYERS: []}
    distances: dict[int, list[float]] = {1: [], VELOCITY_LAYERS: []}
    pads = [pad for pad in kit.pads.values() if len(pad.velocity_latents(VELOCITY_LAYERS)) > 1]
    for pad in pads:
        z = np.array(pad.velocity_latents(VELOCITY_LAYERS), np.float32)
        classes = np.full(len(z), info.class_index(pad.class_name), np.int64)
        magnitude = decoder.magnitudes(z, classes)
        for _ in range(args.repeats):
            for layers in times:  # in turn, so that a drift of the machine's speed hits both
                started = time.perf_counter()
                audio = decoder.render(z, classes, floor=SILENCE, layers=layers)
                times[layers].append(1000 * (time.perf_counter() - started))
        for layers in times:
            audio = decoder.render(z, classes, floor=SILENCE, layers=layers)
            framing = (info.n_fft, info.hop_length, info.sample_rate)
            distances[layers] += spectrum_distance(magnitude, audio, *framing).tolist()
    rows = [
        [
            "each layer in full" if layers == 1 else "from the middle layer's phase",
            f"{np.median(times[layers]):.1f}",
            f"{np.percentile(times[layers], 99):.1f}",
            f"{np.mean(distances[layers]):.3f}",
        ]
        for layers in times
    ]
    print(
        f"{args.model}: {len(pads)} pads of the default kit, {VELOCITY_LAYERS} velocity layers, "
        f"{args.repeats} renders each, one core"
    )
    print(table(["phase", "pad ms median", "p99", "mel distance to own magnitudes (dB)"], rows))
    write_json(
        args.json,
        {
            "model": str(args.model),
            "pads": len(pads),
            "ms": {str(k): v for k, v in times.items()},
            "mel_db": {str(k): float(np.mean(v)) for k, v in distances.items()},
        },
    )


if __name__ == "__main__":
    main()
