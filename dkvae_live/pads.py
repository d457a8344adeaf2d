"""Pads: what a MIDI note plays. A pad is a drum class, a point in latent space and a gain.

`PadBank` holds the pads and is changed by the OSC and MIDI threads; every change replaces a
frozen `Pad` and tells the render worker which note to render again.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

# General MIDI percussion (channel 10) note -> (class name, choke group).
# Choke group 1 is the hi-hat: a closed or pedal hat cuts an open one.
GM_DRUMS: dict[int, tuple[str, int]] = {
    35: ("kick", 0),
    36: ("kick", 0),
    37: ("perc", 0),  # side stick
    38: ("snare", 0),
    39: ("perc", 0),  # hand clap
    40: ("snare", 0),  # electric snare
    41: ("tom", 0),
    42: ("hihat", 1),  # closed
    43: ("tom", 0),
    44: ("hihat", 1),  # pedal
    45: ("tom", 0),
    46: ("hihat", 1),  # open
    47: ("tom", 0),
    48: ("tom", 0),
    49: ("cymbal", 0),  # crash 1
    50: ("tom", 0),
    51: ("cymbal", 0),  # ride 1
    52: ("cymbal", 0),  # china
    53: ("cymbal", 0),  # ride bell
    54: ("perc", 0),  # tambourine
    55: ("cymbal", 0),  # splash
    56: ("perc", 0),  # cowbell
    57: ("cymbal", 0),  # crash 2
    59: ("cymbal", 0),  # ride 2
}

MAX_GAIN = 4.0


@dataclass(frozen=True)
class Pad:
    """One pad. Frozen: a change makes a new Pad, so readers never see half an update."""

    note: int
    class_name: str
    latent: tuple[float, ...]
    gain: float = 1.0
    pan: float = 0.0
    choke_group: int = 0
    polyphony: int = 4

    def channel_gains(self) -> tuple[float, float]:
        """Equal-power pan law: (left, right) gains at this pad's gain."""
        angle = (self.pan + 1.0) * math.pi / 4.0
        level = self.gain * math.sqrt(2)
        return level * math.cos(angle), level * math.sin(angle)


def default_latent(note: int, latent_size: int) -> tuple[float, ...]:
    """A fixed, different point for each note, so that pads of one class do not sound alike.

    The first pad of each class (kick 36, snare 38, closed hat 42, ...) could sit at the origin;
    every pad instead gets a small deterministic offset seeded by its note number.
    """
    rng = np.random.default_rng(note)
    return tuple(float(v) for v in rng.normal(0.0, 0.6, latent_size).round(3))


def default_pads(class_names: Iterable[str], latent_size: int) -> dict[int, Pad]:
    """The General MIDI drum map, restricted to what the model can play.

    A GM class the model does not know falls back to the model's first class.
    """
    names = list(class_names)
    pads = {}
    for note, (class_name, choke) in GM_DRUMS.items():
        chosen = class_name if class_name in names else names[0]
        pads[note] = Pad(note, chosen, default_latent(note, latent_size), choke_group=choke)
    return pads


class PadBank:
    """The pads, safe to change from any thread. `on_change(note)` runs after each change."""

    def __init__(
        self,
        pads: dict[int, Pad],
        class_names: tuple[str, ...],
        latent_size: int,
        on_change: Callable[[int], None] = lambda note: None,
    ) -> None:
        self._pads = dict(pads)
        self._lock = threading.Lock()
        self.class_names = class_names
        self.latent_size = latent_size
        self.on_change = on_change

    def get(self, note: int) -> Pad | None:
        return self._pads.get(note)

    def notes(self) -> list[int]:
        return sorted(self._pads)

    def snapshot(self) -> dict[int, Pad]:
        with self._lock:
            return dict(self._pads)

    def _update(self, note: int, **changes: object) -> Pad:
        with self._lock:
            pad = self._pads.get(note)
            if pad is None:
                raise KeyError(f"no pad on note {note}; pads are on notes {self.notes()}")
            new = replace(pad, **changes)  # type: ignore[arg-type]
            self._pads[note] = new
        self.on_change(note)
        return new

    def set_latent(self, note: int, latent: Iterable[float]) -> Pad:
        values = tuple(float(v) for v in latent)
        if len(values) != self.latent_size:
            raise ValueError(f"latent needs {self.latent_size} values, got {len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError("latent values must be finite numbers")
        return self._update(note, latent=values)

    def set_dim(self, note: int, dim: int, value: float) -> Pad:
        if not 0 <= dim < self.latent_size:
            raise ValueError(f"dimension must be in range 0..{self.latent_size - 1}, got {dim}")
        if not math.isfinite(value):
            raise ValueError("latent values must be finite numbers")
        pad = self.get(note)
        if pad is None:
            raise KeyError(f"no pad on note {note}")
        latent = list(pad.latent)
        latent[dim] = float(value)
        return self._update(note, latent=tuple(latent))

    def set_class(self, note: int, class_name: str) -> Pad:
        if class_name not in self.class_names:
            raise ValueError(
                f"unknown class {class_name!r}; this model knows {', '.join(self.class_names)}"
            )
        return self._update(note, class_name=class_name)

    def set_gain(self, note: int, gain: float) -> Pad:
        if not (math.isfinite(gain) and 0.0 <= gain <= MAX_GAIN):
            raise ValueError(f"gain must be in range 0..{MAX_GAIN:g}, got {gain}")
        return self._update(note, gain=float(gain))

    def set_pan(self, note: int, pan: float) -> Pad:
        if not (math.isfinite(pan) and -1.0 <= pan <= 1.0):
            raise ValueError(f"pan must be in range -1..1, got {pan}")
        return self._update(note, pan=float(pan))
