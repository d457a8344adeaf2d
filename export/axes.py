"""Fit an exported model's timbre axes on a bank's training split; store them in its decoder.

The latents come from the exported encoder and the sounds from the exported decoder (both
through the daemon's loader), so the axes move what the daemon plays. See
:mod:`dkvae_live.axes`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dkvae_live import axes, class_latents, contract, descriptors
from dkvae_live.model import Decoder, Encoder

from .class_latents import training_split, write_metadata

logger = logging.getLogger(__name__)

PER_CLASS = 200  # latents drawn, rendered and measured per class
SPREAD = 1.5  # how much wider than the class's training sounds they are drawn


def add_axes(
    model_dir: Path,
    audio: np.ndarray,
    labels: np.ndarray,
    batch: int = 32,
    per_class: int = PER_CLASS,
    seed: int = 0,
) -> dict[str, axes.ClassAxes]:
    """Fit each class's axes on the training split ``audio``, write them into ``decoder.onnx``
    and check that the daemon loads it.

    The spread of each descriptor comes from the real sounds. The directions come from what the
    decoder plays: ``per_class`` latents drawn from a Gaussian fitted to the encoder's latents
    of the class's sounds, widened by SPREAD (pads sit anywhere about the class, not only where
    its training sounds lie), rendered and measured.
    """
    decoder_path = Path(model_dir) / contract.DECODER_FILE
    decoder = Decoder(decoder_path)
    info = decoder.info
    encoder = Encoder(Path(model_dir) / contract.ENCODER_FILE, info)
    labels = np.asarray(labels)
    names = [info.class_names[int(i)] for i in labels]
    std = axes.spread(
        descriptors.measure_all(audio, info.sample_rate, names), labels, info.class_names
    )
    z = np.concatenate([encoder.encode(audio[i : i + batch]) for i in range(0, len(audio), batch)])
    rng = np.random.default_rng(seed)
    regions = class_latents.fit(z, labels, info.class_names)
    drawn = np.array(
        [regions[n].sample(rng, SPREAD) for n in regions for _ in range(per_class)], np.float32
    )
    drawn_labels = np.repeat([info.class_index(n) for n in regions], per_class)
    played = np.concatenate(
        [
            decoder.render(drawn[i : i + batch], drawn_labels[i : i + batch])
            for i in range(0, len(drawn), batch)
        ]
    )
    fitted = axes.fit(
        drawn,
        drawn_labels,
        info.class_names,
        descriptors.measure_all(
            played, info.sample_rate, [info.class_names[int(i)] for i in drawn_labels]
        ),
        std,
    )
    write_metadata(decoder_path, contract.AXES, axes.to_json(fitted))
    for name, c in fitted.items():
        logger.info(
            "axes of %s from %d sounds: %s",
            name,
            c.sounds,
            ", ".join(f"{a} r2 {r:.2f}" for a, r in zip(contract.AXIS_NAMES, c.r2, strict=True)),
        )
    return fitted


def add_axes_from_bank(
    model_dir: Path, bank: Path, cache_dir: Path | None = None
) -> dict[str, axes.ClassAxes]:
    """:func:`add_axes` on the training split of ``bank``, read at the model's rate."""
    return add_axes(model_dir, *training_split(model_dir, bank, cache_dir))
