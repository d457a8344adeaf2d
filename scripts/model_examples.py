"""Put a model's examples beside it: a few generated one-shots per class as FLAC, and the
spectrogram sheet, from what ``dkvae-eval`` wrote (so a reader hears and sees the model without
installing anything).

    .venv/bin/python scripts/model_examples.py runs/my-vae/eval-test dkvae_live/models/default

Takes the first ``--per-class`` sounds of each class from ``EVAL/generated-class-latents`` (drawn
as ``/dkvae/pad/randomize`` draws them), cuts the silent tail, and writes
``MODEL/examples/<class>-<n>.flac`` (16-bit) and ``MODEL/spectrograms.png`` (real test sounds,
their reconstructions and generated sounds, per class; palette PNG, to keep the repo small).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

TAIL_DB = -60.0  # the tail is cut after the last sample louder than this below the peak
FADE_SECONDS = 0.005


def trimmed(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) or 1.0
    loud = np.flatnonzero(np.abs(audio) >= peak * 10.0 ** (TAIL_DB / 20.0))
    out = audio[: int(loud[-1]) + 1 if loud.size else 1].copy()
    fade = min(len(out), round(FADE_SECONDS * sample_rate))
    out[len(out) - fade :] *= np.linspace(1.0, 0.0, fade)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_dir", type=Path, help="a dkvae-eval output folder")
    parser.add_argument("model_dir", type=Path, help="the exported model's folder")
    parser.add_argument("--per-class", type=int, default=2)
    args = parser.parse_args()
    source = args.eval_dir / "generated-class-latents"
    out = args.model_dir / "examples"
    out.mkdir(parents=True, exist_ok=True)
    classes = sorted(p for p in source.iterdir() if p.is_dir())
    names = {c.name for c in classes}
    # the one-shots of an earlier run go; anything else there (the demo groove) stays
    for old in out.glob("*-*.flac"):
        if old.stem.rsplit("-", 1)[0] in names:
            old.unlink()
    written = []
    for class_dir in classes:
        for n, wav in enumerate(sorted(class_dir.glob("*.wav"))[: args.per_class], start=1):
            audio, rate = sf.read(str(wav), dtype="float32")
            written.append(out / f"{class_dir.name}-{n}.flac")
            sf.write(str(written[-1]), trimmed(audio, rate), rate, "PCM_16")
    size = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} sounds, {size / 1e6:.2f} MB, into {out}")
    sheet = args.model_dir / "spectrograms.png"
    Image.open(args.eval_dir / "spectrograms.png").convert("RGB").quantize(64).save(
        sheet, optimize=True
    )
    print(f"wrote {sheet} ({sheet.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
