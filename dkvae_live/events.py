"""Small immutable events that the MIDI and OSC threads hand to the audio callback.

They travel one way through a `collections.deque` (append on the producer side, popleft in the
callback; both are atomic in CPython, so nobody waits on a lock).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class NoteOn:
    note: int
    velocity: int  # 1..127


@dataclass(frozen=True, slots=True)
class StopAll:
    """Fade every sounding voice out."""


Event = NoteOn | StopAll


@dataclass(frozen=True, slots=True)
class PadSound:
    """What the audio callback needs to play a pad: published whole by the render worker.

    `variants` holds one or more float32 arrays [velocity_layers, samples] at the device rate,
    mono, never written after publication. Hit n of the pad plays variant n % len(variants);
    its velocity picks two neighbouring layers and crossfades them.
    """

    note: int
    variants: tuple[np.ndarray, ...]
    gain_left: float
    gain_right: float
    choke_group: int
    polyphony: int
    velocity_curve: float = 1.0
