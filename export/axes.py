"""Fit an exported model's timbre axes on a bank's training split; store them in its decoder.

The latents come from the exported encoder and the sounds from the exported decoder (both
through the daemon's loader), so the axes move what the daemon plays. See
:mod:`dkvae_live.axes`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from dkvae_live import axes, class_latents, contract, descriptors
from dkvae_live.model import Decoder, Encoder, ModelError

from .class_latents import training_split, write_metadata

logger = logging.getLogger(__name__)

PER_CLASS = 200  # latents drawn, rendered and measured per class
SPREAD = 1.5  # how much wider than the class's training sounds they are drawn
REFINE_SOUNDS = 30  # training sounds per class whose latents each correction measures
# corrections, each rendering REFINE_SOUNDS x 2 x latent_size sounds per class; the best is kept
# (the fewest with which the shipped default meets tests/test_axes_acceptance.py: the model
# card and docs/bake-off.md say how many each default needed)
REFINE_ROUNDS = 4


def _measure(decoder: Decoder, latents: np.ndarray, classes: np.ndarray, batch: int) -> np.ndarray:
    """The descriptors [n, 4] of what ``decoder`` plays from ``latents`` [n, latent_size] of
    ``classes`` [n], rendered ``batch`` at a time."""
    info = decoder.info
    audio = np.concatenate(
        [
            decoder.render(latents[i : i + batch], classes[i : i + batch])
            for i in range(0, len(latents), batch)
        ]
    )
    return descriptors.measure_all(
        audio, info.sample_rate, [info.class_names[int(i)] for i in classes]
    )


def _per_axis(values: np.ndarray) -> str:
    """Brightness/decay/pitch/punch figures for the log: "0.93/0.19/0.25/1.05"."""
    return "/".join(f"{v:.2f}" for v in values)


def add_axes(
    model_dir: Path,
    audio: np.ndarray,
    labels: np.ndarray,
    batch: int = 32,
    per_class: int = PER_CLASS,
    seed: int = 0,
    refine_sounds: int = REFINE_SOUNDS,
    rounds: int = REFINE_ROUNDS,
) -> dict[str, axes.ClassAxes]:
    """Fit each class's axes on the training split ``audio``, write them into ``decoder.onnx``
    and check that the daemon loads it.

    The spread of each descriptor comes from the real sounds. The directions come from what the
    decoder plays: ``per_class`` latents drawn from a Gaussian fitted to the encoder's latents
    of the class's sounds, widened by SPREAD (pads sit anywhere about the class, not only where
    its training sounds lie), rendered and measured. Then :func:`dkvae_live.axes.refine`
    corrects them ``rounds`` times, each time at the latents of ``refine_sounds`` training
    sounds of the class picked at random, moved along them the way the acceptance test moves a
    pad, and measures the result at ``refine_sounds`` more.
    """
    started = time.monotonic()
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
    # the Gaussian alone, not near each sound: a smooth spread over the whole class is what the
    # directions were chosen and accepted on (tests/test_axes_acceptance.py)
    regions = {
        name: replace(c, sounds_at=None)
        for name, c in class_latents.fit(z, labels, info.class_names).items()
    }
    drawn = np.array(
        [regions[n].sample(rng, SPREAD) for n in regions for _ in range(per_class)], np.float32
    )
    drawn_labels = np.repeat([info.class_index(n) for n in regions], per_class)
    fitted = axes.fit(
        drawn, drawn_labels, info.class_names, _measure(decoder, drawn, drawn_labels, batch), std
    )
    for name, c in fitted.items():
        logger.info(
            "axes of %s from %d sounds: %s",
            name,
            c.sounds,
            ", ".join(f"{a} r2 {r:.2f}" for a, r in zip(contract.AXIS_NAMES, c.r2, strict=True)),
        )
    linear = time.monotonic()
    for name in list(fitted) if rounds > 0 else []:
        mine = np.flatnonzero(labels == info.class_index(name))
        if len(mine) < axes.MIN_SOUNDS:
            continue
        # rounds + 1 sets of sounds, apart from each other as far as the class has sounds
        order = rng.permutation(mine)
        size = min(refine_sounds, len(mine))
        latents = [z[order[(k * size + np.arange(size)) % len(order)]] for k in range(rounds + 1)]

        def measure(at: np.ndarray, name: str = name) -> np.ndarray:
            return _measure(decoder, at, np.full(len(at), info.class_index(name)), batch)

        fitted[name], history = axes.refine(fitted[name], latents, measure)
        kept = axes.best(history)
        for i, step in enumerate(history):
            logger.info(
                "axes of %s, %s measured at %d sounds: own %s stds per unit, others %s as much",
                name,
                "linear fit" if i == 0 else f"correction {i}",
                len(latents[i]),
                _per_axis(step.own),
                _per_axis(step.cross),
            )
        logger.info(
            "axes of %s kept: own %s, others %s as much",
            name,
            _per_axis(kept.own),
            _per_axis(kept.cross),
        )
    logger.info(
        "axes fitted in %.0f s (linear fit %.0f s, refinement %.0f s)",
        time.monotonic() - started,
        linear - started,
        time.monotonic() - linear,
    )
    write_metadata(decoder_path, {contract.AXES: axes.to_json(fitted)})
    return fitted


def add_axes_from_bank(
    model_dir: Path,
    bank: Path,
    cache_dir: Path | None = None,
    rounds: int = REFINE_ROUNDS,
    refine_sounds: int = REFINE_SOUNDS,
) -> dict[str, axes.ClassAxes]:
    """:func:`add_axes` on the training split of ``bank``, read at the model's rate."""
    audio, labels = training_split(model_dir, bank, cache_dir)
    return add_axes(model_dir, audio, labels, rounds=rounds, refine_sounds=refine_sounds)


def copy_axes(model_dir: Path, source_dir: Path) -> dict[str, axes.ClassAxes]:
    """Give the model in ``model_dir`` the timbre axes of the model in ``source_dir``, whose
    encoder must be the same: a decoder trained on alone (an adversarial stage) keeps its
    source's latent space, and axes fitted there; tests/test_axes_acceptance.py (with
    ``DKVAE_AXES_MODEL``) then says whether they still move what they name."""
    import onnx
    from onnx import numpy_helper

    source = Decoder(source_dir / "decoder.onnx")
    if not source.info.axes:
        raise ModelError(f"{source.path} has no axes to copy")

    def encoder_weights(folder: Path) -> list[tuple[str, tuple[int, ...], bytes]]:
        """Its constants, in an order of their own (an export numbers folded ones afresh)."""
        proto = onnx.load(str(folder / "encoder.onnx"))
        arrays = (numpy_helper.to_array(i) for i in proto.graph.initializer)
        return sorted((a.dtype.str, a.shape, a.tobytes()) for a in arrays)

    if encoder_weights(model_dir) != encoder_weights(source_dir):
        raise ModelError(
            f"{model_dir} does not have {source_dir}'s encoder, so not its latent space: "
            "fit its own axes with --axes-only"
        )
    decoder_path = model_dir / "decoder.onnx"
    info = Decoder(decoder_path).info
    if (info.latent_size, info.class_names) != (source.info.latent_size, source.info.class_names):
        raise ModelError(f"{model_dir} and {source_dir} differ in latent size or classes")
    write_metadata(decoder_path, {contract.AXES: axes.to_json(source.info.axes)})
    logger.info("axes of %s copied into %s", source_dir, decoder_path)
    return dict(source.info.axes)
