"""Render the demo groove through the shipped model and default kit into the model's examples:
``dkvae_live/models/default/examples/demo.flac``, the file the README links.

Run it whenever the shipped model or default kit changes, after ``scripts/model_examples.py``
(which empties ``examples/``) and ``scripts/make_default_kit.py``:

    .venv/bin/python scripts/make_demo.py
    .venv/bin/dkvae-live map -o docs/map.png   # the README's map, from the same model and kit

It is ``dkvae-live render --demo`` at the model's own sample rate, kept as 16-bit FLAC, and it
refuses to write a file over MAX_BYTES (the repository keeps its examples small).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import soundfile as sf

from dkvae_live.cli import main as dkvae_live
from dkvae_live.kit import DEFAULT_KIT
from dkvae_live.model import DEFAULT_MODEL_DIR, Decoder

MAX_BYTES = 500_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--kit", type=Path, default=DEFAULT_KIT)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    out = args.output or args.model / "examples" / "demo.flac"
    rate = Decoder(args.model).info.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "demo.wav"
        command = ["render", "--demo", "-o", str(wav), "--model", str(args.model)]
        if dkvae_live([*command, "--kit", str(args.kit), "--samplerate", str(rate)]) != 0:
            return 1
        audio, _ = sf.read(str(wav), dtype="float32")
        flac = Path(tmp) / "demo.flac"
        sf.write(str(flac), audio, rate, subtype="PCM_16")
        size = flac.stat().st_size
        if size > MAX_BYTES:
            print(f"make_demo: {size} bytes, over {MAX_BYTES}: shorten the groove", file=sys.stderr)
            return 1
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(flac.read_bytes())
    print(f"wrote {out} ({size / 1000:.0f} kB, {len(audio) / rate:.1f} s at {rate} Hz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
