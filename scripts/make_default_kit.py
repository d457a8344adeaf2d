"""Build dkvae_live/kits/default.toml from the shipped model and the default training bank.

The prior of the shipped model is a poor place to pick pads from (see its model card); the
encodings of real sounds are good ones. Each General MIDI pad gets the encoder's latent of a
typical training sound of its class (the ones nearest the class's mean latent, a different one
per pad) and a gain that levels the pads; the hi-hats get a short sound on 42, a medium one
on 44 and a long one on 46. Velocity moves every pad along the latent direction that best
predicts brightness (spectral centroid) in the training split, so a harder hit is brighter.

    .venv/bin/python scripts/make_default_kit.py --bank data/default-bank
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from dkvae_training.bank import load_split

from dkvae_live.kit import DEFAULT_KIT, Kit, save_kit
from dkvae_live.model import DEFAULT_MODEL_DIR, Decoder, Encoder
from dkvae_live.pads import default_pads

HAT_PERCENTILES = {42: 15, 44: 45, 46: 90}  # closed, pedal, open: by the sound's length
PAD_PEAK = 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bank", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--timbre-amount", type=float, default=0.4)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_KIT)
    args = parser.parse_args()
    decoder = Decoder(DEFAULT_MODEL_DIR)
    info = decoder.info
    encoder = Encoder(DEFAULT_MODEL_DIR / "encoder.onnx", info)
    bank = load_split(
        args.bank,
        "train",
        sample_rate=info.sample_rate,
        num_samples=info.num_samples,
        cache_dir=args.cache_dir,
    )
    latents = np.concatenate(
        [encoder.encode(bank.audio[i : i + 32]) for i in range(0, len(bank.audio), 32)]
    )
    spectrum = np.abs(np.fft.rfft(bank.audio, axis=1))
    freqs = np.fft.rfftfreq(bank.audio.shape[1], 1 / info.sample_rate)
    centroid = np.log((spectrum * freqs).sum(1) / np.maximum(spectrum.sum(1), 1e-9) + 1.0)
    # The direction in latent space along which brightness grows fastest (least squares).
    design = np.hstack([latents, np.ones((len(latents), 1))])
    weights = np.linalg.lstsq(design, centroid, rcond=None)[0][:-1]
    direction = weights / np.linalg.norm(weights)
    lengths = (np.abs(bank.audio) > 0.01).cumsum(1).argmax(1)

    pads = default_pads(info.class_names, info.latent_size)
    used: dict[str, int] = {}
    for note, pad in sorted(pads.items()):
        members = np.flatnonzero(bank.labels == info.class_index(pad.class_name))
        if note in HAT_PERCENTILES:
            target = np.percentile(lengths[members], HAT_PERCENTILES[note])
            chosen = members[np.argmin(np.abs(lengths[members] - target))]
        else:
            centre = latents[members].mean(0)
            nearest = members[np.argsort(np.linalg.norm(latents[members] - centre, axis=1))]
            chosen = nearest[used.get(pad.class_name, 0) % len(nearest)]
            used[pad.class_name] = used.get(pad.class_name, 0) + 1
        pad = replace(
            pad,
            latent=tuple(round(float(v), 4) for v in latents[chosen]),
            timbre_direction=tuple(round(float(v), 4) for v in direction),
            timbre_amount=args.timbre_amount,
        )
        # Level the pads: the hardest hit of each peaks at PAD_PEAK before the master gain.
        hardest = decoder.render(
            np.array([pad.velocity_latents(5)[-1]], np.float32),
            np.array([info.class_index(pad.class_name)]),
        )
        gain = min(4.0, PAD_PEAK / max(float(np.max(np.abs(hardest))), 1e-3))
        pads[note] = replace(pad, gain=round(gain, 3))
        print(f"pad {note:3d} {pad.class_name:7s} gain {gain:4.2f} <- {bank.ids[chosen]}")
    save_kit(Kit("default", pads), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
