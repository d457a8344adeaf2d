"""What the render worker hands the mixer: a pad's sound, published whole."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class PadSound:
    """What the audio callback needs to play a pad: published whole by the render worker.

    `variants` holds one or more float32 arrays [velocity_layers, samples] at the device rate,
    mono, never written after publication. Hit n of the pad plays variant n % len(variants);
    its velocity picks two neighbouring layers and crossfades them. `output` names the output
    pair it also plays on, besides the main pair (the whole mix); "" (or a name the audio
    backend has no pair for): the main pair only.
    """

    note: int
    variants: tuple[np.ndarray, ...]
    gain_left: float
    gain_right: float
    choke_group: int
    polyphony: int
    velocity_curve: float = 1.0
    output: str = ""
