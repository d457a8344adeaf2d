"""How often the render worker's decay guard (dkvae_live/decay_guard.py) cuts a sound: real
ones, which it should leave alone, and a model's generated ones.

Method: real sounds are a bank split read as the encoder reads them, through the model's own
STFT (n_fft, hop); generated ones are --per-class latents drawn where each class lies
(dkvae.class_latents, as /dkvae/pad/randomize draws), decoded to magnitudes. A sound counts as
cut when a frame within --range dB of its loudest is over the guard's limit by more than
--by dB: an audible cut, not a trim of the noise floor. Needs a log-magnitude model.

    .venv/bin/python bench/decay_guard.py [MODEL_DIR] --bank data/bank-v3 [--split train]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import DEFAULT_MODEL_DIR, RESULTS, conditions, table, write_json
from dkvae_training.bank_loading import load_split

from dkvae_live import contract, drum_features
from dkvae_live.decay_guard import RISE_DB, excess_db, frame_db
from dkvae_live.model import Decoder
from dkvae_live.phase import stft


def audibly_cut(magnitude: np.ndarray, range_db: float, by_db: float) -> np.ndarray:
    """[batch] bool: the guard cuts a frame within `range_db` of the loudest by over `by_db`."""
    energy = frame_db(magnitude)
    audible = energy > energy.max(axis=1, keepdims=True) - range_db
    return np.any(audible & (excess_db(energy) > by_db), axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--range", type=float, default=60.0)
    p.add_argument("--by", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    decoder = Decoder(args.model / "decoder.onnx")
    info = decoder.info
    if info.output_kind != contract.LOG_MAGNITUDE or not info.class_latents:
        raise SystemExit(f"{args.model}: needs a log-magnitude model with class latents")
    real = load_split(args.bank, args.split, sample_rate=info.sample_rate)
    rng = np.random.default_rng(args.seed)
    frames = info.num_samples // info.hop_length + 1  # the decoder's own frame count
    rows, result = [], {}
    for index, name in enumerate(info.class_names):
        audio = drum_features.prepare(real.audio[real.labels == index][:, : info.num_samples])[0]
        real_cut = audibly_cut(
            np.abs(stft(audio, info.n_fft, info.hop_length, frames)), args.range, args.by
        )
        latents = info.class_latents.get(name)
        generated_cut = np.array([])
        if latents is not None:
            z = np.stack([latents.sample(rng) for _ in range(args.per_class)]).astype(np.float32)
            output = decoder.output(z, np.full(len(z), index))
            magnitude = np.maximum(np.exp(output) - info.log_offset, 0.0)
            generated_cut = audibly_cut(magnitude, args.range, args.by)
        result[name] = {
            "real": len(real_cut),
            "real_cut": float(np.mean(real_cut)) if len(real_cut) else None,
            "generated": len(generated_cut),
            "generated_cut": float(np.mean(generated_cut)) if len(generated_cut) else None,
        }
        rows.append(
            [
                name,
                f"{np.sum(real_cut)} of {len(real_cut)}",
                f"{np.sum(generated_cut)} of {len(generated_cut)}",
            ]
        )
    print(
        f"{args.model}: sounds the guard (rise {RISE_DB:g} dB) cuts by > {args.by:g} dB within "
        f"{args.range:g} dB of their loudest frame; real: {args.bank} {args.split}"
    )
    print(table(["class", "real", "generated"], rows))
    write_json(
        RESULTS / "decay_guard.json",
        {"conditions": conditions(model=str(args.model), bank=str(args.bank)), "classes": result},
    )


if __name__ == "__main__":
    main()
