"""Issue 23's acceptance test, on the shipped default model and kit: each timbre axis moves its
descriptor in the named direction on at least 80 % of the pads, and the other three move by less
than half as much on average. The axes are read from the model's metadata (``dkvae.axes``),
whichever model is shipped; ``pytest -s`` prints the table. ``$DKVAE_AXES_MODEL`` (a model
folder or decoder) runs it on another model with the same classes, e.g. one refitted with
``dkvae-export MODEL --axes-only --bank BANK`` before it is shipped."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dkvae_live import descriptors
from dkvae_live.contract import AXIS_NAMES
from dkvae_live.kit import DEFAULT_KIT, load_kit
from dkvae_live.model import DEFAULT_MODEL_DIR, Decoder

SHARE = 0.8  # of the pads on which an axis must move its descriptor the named way
CROSS = 0.5  # the others' mean move against the axis's own


def measure_axes(decoder: Decoder) -> tuple[np.ndarray, list[int]]:
    """[pads, axis, descriptor]: descriptor(+1) - descriptor(-1) in class standard deviations."""
    info = decoder.info
    pads = load_kit(DEFAULT_KIT, info.class_names, info.latent_size).pads
    moves, notes = [], []
    for note, pad in sorted(pads.items()):
        axes = info.axes.get(pad.class_name)
        if axes is None:
            continue
        latents = [np.add(pad.latent, v * d) for d in axes.directions for v in (-1.0, 1.0)]
        audio = decoder.render(
            np.array(latents, np.float32), np.full(len(latents), info.class_index(pad.class_name))
        )
        values = np.array([descriptors.measure(a, info.sample_rate, pad.class_name) for a in audio])
        values = values.reshape(len(AXIS_NAMES), 2, len(AXIS_NAMES)) / axes.std
        moves.append(values[:, 1] - values[:, 0])
        notes.append(note)
    return np.array(moves), notes


def test_each_axis_moves_its_descriptor_on_the_default_kit() -> None:
    decoder = Decoder(os.environ.get("DKVAE_AXES_MODEL") or DEFAULT_MODEL_DIR)
    if not decoder.info.axes:
        pytest.skip(
            f"{decoder.path} has no axes: dkvae-export {decoder.path.parent} "
            "--axes-only --bank BANK"
        )
    moves, notes = measure_axes(decoder)
    assert notes, "no pad of the default kit has a class with axes"
    print(f"\n{decoder.info.name}: {len(notes)} pads, change from axis -1 to +1 in class stds")
    print(f"{'axis':<11}{'right way':>10}{'own |d|':>9}{'others |d|':>12}")
    failures = []
    for i, axis in enumerate(AXIS_NAMES):
        own = moves[:, i, i]
        others = np.abs(np.delete(moves[:, i], i, axis=1)).mean()
        share = float(np.mean(own > 0))
        print(f"{axis:<11}{share:>10.0%}{np.abs(own).mean():>9.2f}{others:>12.2f}")
        if share < SHARE:
            failures.append(f"{axis}: the named way on {share:.0%} of pads")
        if others >= CROSS * np.abs(own).mean():
            failures.append(
                f"{axis}: the others move {others:.2f}, itself {np.abs(own).mean():.2f}"
            )
    assert not failures, "; ".join(failures)
