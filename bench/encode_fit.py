"""What an encode costs and wins: the time `dkvae_live.latent_fit.fit_latent` takes per sound
on one core, and issue 18's measure 1 of the decoder's magnitudes from the encoder's latent and
from the fitted one, for real sounds of a bank split.

Method: the process is pinned to one CPU, onnxruntime and numpy on one thread each (as the
daemon's job thread runs an encode). Each sound of the split (or a fixed draw of --limit), read
as the encoder reads a file, is encoded; the fit is timed from the encoder's latent at the
sound's class for each --steps. The distance is the fit's own (the model's framing, magnitudes,
no phase); `dkvae-eval --fit-steps N` gives measure 1 as the daemon plays the sounds.

    .venv/bin/python bench/encode_fit.py --bank data/bank-v3 --split validation --limit 40
    .venv/bin/python bench/encode_fit.py --bank data/bank-v3-fair --steps 12,24,48
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in the daemon; before numpy loads

import numpy as np
from common import DEFAULT_MODEL_DIR, RESULTS, conditions, table, write_json
from render_speed import pin_to_one_core

from dkvae_live import latent_fit
from dkvae_live.model import Decoder, Encoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=0, help="at most this many sounds (a fixed draw)")
    p.add_argument("--steps", default=str(latent_fit.FIT_STEPS), help="comma-separated")
    p.add_argument("--json", type=Path, default=RESULTS / "encode_fit.json")
    args = p.parse_args()
    from dkvae_training.bank import load_split

    cpu = pin_to_one_core()
    decoder = Decoder(args.model / "decoder.onnx")
    info = decoder.info
    encoder = Encoder(args.model / "encoder.onnx", info)
    split = load_split(
        args.bank,
        args.split,
        sample_rate=info.sample_rate,
        num_samples=info.num_samples,
        class_names=info.class_names,
    )
    audio, labels = split.audio, split.labels
    if 0 < args.limit < len(audio):
        keep = np.sort(np.random.default_rng(0).permutation(len(audio))[: args.limit])
        audio, labels = audio[keep], labels[keep]
    starts = encoder.encode(audio)
    encoded = [
        latent_fit.fit_distance(decoder, a, int(c), z[None])[0]
        for a, c, z in zip(audio, labels, starts, strict=True)
    ]
    rows: list[list[object]] = [["0 (the encoder's)", "-", "-", f"{np.mean(encoded):.2f}"]]
    by_steps: dict[int, dict[str, float]] = {}
    for steps in (int(s) for s in args.steps.split(",")):
        seconds, distances = [], []
        for a, c, z in zip(audio, labels, starts, strict=True):
            began = time.perf_counter()
            fitted = latent_fit.fit_latent(decoder, a, int(c), z, steps)
            seconds.append(time.perf_counter() - began)
            distances.append(latent_fit.fit_distance(decoder, a, int(c), fitted[None])[0])
        ms = 1000 * np.asarray(seconds)
        median, p99 = float(np.median(ms)), float(np.percentile(ms, 99))
        rows.append([steps, f"{median:.0f}", f"{p99:.0f}", f"{np.mean(distances):.2f}"])
        by_steps[steps] = {"median_ms": median, "p99_ms": p99, "mel_db": float(np.mean(distances))}
    print(f"{len(audio)} sounds of {args.bank} ({args.split}), {info.name}, one core (cpu {cpu})")
    print(table(["steps", "fit median (ms)", "fit p99 (ms)", "mel distance (dB)"], rows))
    write_json(
        args.json,
        {
            "conditions": conditions(cpu=cpu),
            "sounds": len(audio),
            "encoder_mel_db": float(np.mean(encoded)),
            "steps": by_steps,
        },
    )


if __name__ == "__main__":
    main()
