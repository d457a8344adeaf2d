"""Pads: what a MIDI note plays. A pad is a drum class, a point in latent space and a gain.

`PadBank` holds the pads and is changed by the OSC and MIDI threads; every change replaces a
frozen `Pad` and tells the render worker which note to render again.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .contract import AXIS_NAMES
from .labels import GM_DRUM_CLASSES

# General MIDI percussion (channel 10) note -> (class name, choke group), notes 35-59: the
# classes the bank gives those notes' sounds (labels.GM_DRUM_CLASSES: a side stick trains as a
# snare, a hand clap as perc), so a pad plays the class its GM name was learned as. Choke group 1
# is the hi-hat: a closed or pedal hat (42, 44) cuts an open one (46).
_HIHAT_CHOKE = {42: 1, 44: 1, 46: 1}
GM_DRUMS: dict[int, tuple[str, int]] = {
    note: (label, _HIHAT_CHOKE.get(note, 0))
    for note in range(35, 60)
    if (label := GM_DRUM_CLASSES.get(note)) is not None
}

MAX_GAIN = 4.0
AXIS_LIMIT = 3.0  # axis values: standard deviations of the class's sounds
LATENT_LIMIT = 10.0  # |latent values|: the prior is N(0, 1); far outside is noise
# An output pair's name: its JACK ports are NAME_1 and NAME_2. No ':' (JACK's client:port
# separator), nothing a shell or a DAW's port list would mangle, short enough to read.
OUTPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
MAIN_OUTPUT = "out"  # the main pair's ports, out_1 and out_2: the whole mix


@dataclass(frozen=True)
class Pad:
    """One pad. Frozen: a change makes a new Pad, so readers never see half an update.

    Velocity does two things. The level is `gain * (velocity / 127) ** velocity_curve`. The
    timbre moves along `timbre_direction` in latent space: velocity 1 plays
    `latent - timbre_amount * direction`, velocity 127 `latent + timbre_amount * direction`.
    With `variation` above zero every hit is a fresh point near `latent` (a normal offset of
    that standard deviation in each dimension).
    """

    note: int
    class_name: str
    latent: tuple[float, ...]
    gain: float = 1.0
    pan: float = 0.0
    choke_group: int = 0
    polyphony: int = 4
    velocity_curve: float = 1.0
    timbre_direction: tuple[float, ...] = ()
    timbre_amount: float = 0.0
    variation: float = 0.0
    # how far the timbre axes (contract.AXIS_NAMES order) moved `latent` from the latent set
    # before them; () is all zero. `latent` is what plays: a kit replays without the model's axes
    axes: tuple[float, ...] = ()
    # the output pair this pad also plays on with `--outputs per-pad` ("": the main pair only)
    output: str = ""

    def velocity_latents(self, layers: int) -> list[tuple[float, ...]]:
        """The latents of `layers` velocity layers from softest to hardest (one if no timbre)."""
        if not self._moves_timbre() or layers < 2:
            return [self.latent]
        return [self._timbre_at(i / (layers - 1)) for i in range(layers)]

    def layer_latent(self, velocity: int, layers: int) -> tuple[float, ...]:
        """The latent of the one of `layers` velocity layers nearest a hit at `velocity`
        (1-127), as the mixer crossfades them: velocity 1 on the softest, 127 on the hardest."""
        latents = self.velocity_latents(layers)
        return latents[round((min(max(velocity, 1), 127) - 1) / 126 * (len(latents) - 1))]

    def _moves_timbre(self) -> bool:
        return self.timbre_amount != 0.0 and any(self.timbre_direction)

    def _timbre_at(self, position: float) -> tuple[float, ...]:
        """The latent moved along the timbre direction, softest (0) to hardest (1)."""
        step = self.timbre_amount * (2.0 * position - 1.0)
        return tuple(z + step * d for z, d in zip(self.latent, self.timbre_direction, strict=True))

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


def check_output_name(name: str) -> None:
    """Raise ValueError unless `name` can name an output pair (JACK ports NAME_1, NAME_2)."""
    if name == MAIN_OUTPUT:
        raise ValueError(
            f"output {name!r} is the main pair (out_1/out_2), which every pad plays on; "
            "leave output out for the main pair only"
        )
    if not OUTPUT_NAME.fullmatch(name):
        raise ValueError(
            f"output {name!r} cannot name a pair of JACK ports: use 1 to 32 letters, digits, "
            "'_' or '-', the first a letter or digit (e.g. \"toms\")"
        )


def check_pad(pad: Pad, class_names: tuple[str, ...], latent_size: int) -> None:
    """Raise ValueError naming the first field of `pad` that this model cannot play."""

    def finite_range(name: str, value: float, low: float, high: float) -> None:
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"{name} must be in range {low:g}..{high:g}, got {value}")

    if not 0 <= pad.note <= 127:
        raise ValueError(f"note must be in range 0..127, got {pad.note}")
    if pad.class_name not in class_names:
        raise ValueError(
            f"unknown class {pad.class_name!r}; this model knows {', '.join(class_names)}"
        )
    for name, vector in (("latent", pad.latent), ("timbre_direction", pad.timbre_direction)):
        if name == "timbre_direction" and not vector:
            continue
        if len(vector) != latent_size:
            raise ValueError(f"{name} needs {latent_size} values, got {len(vector)}")
        for value in vector:
            finite_range(name, value, -LATENT_LIMIT, LATENT_LIMIT)
    if pad.axes and len(pad.axes) != len(AXIS_NAMES):
        raise ValueError(f"axes needs {len(AXIS_NAMES)} values ({', '.join(AXIS_NAMES)})")
    for name, value in zip(AXIS_NAMES, pad.axes, strict=False):
        finite_range(name, value, -AXIS_LIMIT, AXIS_LIMIT)
    finite_range("gain", pad.gain, 0.0, MAX_GAIN)
    finite_range("pan", pad.pan, -1.0, 1.0)
    finite_range("velocity_curve", pad.velocity_curve, 0.1, 4.0)
    finite_range("timbre_amount", pad.timbre_amount, 0.0, LATENT_LIMIT)
    finite_range("variation", pad.variation, 0.0, 2.0)
    if not 0 <= pad.choke_group <= 16:
        raise ValueError(f"choke_group must be in range 0..16, got {pad.choke_group}")
    if not 1 <= pad.polyphony <= 32:
        raise ValueError(f"polyphony must be in range 1..32, got {pad.polyphony}")
    if pad.output:
        check_output_name(pad.output)


class PadBank:
    """The pads, safe to change from any thread. `on_change(note)` runs after each change."""

    def __init__(
        self,
        pads: dict[int, Pad],
        class_names: tuple[str, ...],
        latent_size: int,
        on_change: Callable[[int], None] = lambda note: None,
    ) -> None:
        for pad in pads.values():
            check_pad(pad, class_names, latent_size)
        self._pads = dict(pads)
        self._lock = threading.Lock()
        self.class_names = class_names
        self.latent_size = latent_size
        self.on_change = on_change

    def get(self, note: int) -> Pad | None:
        return self._pads.get(note)

    def existing(self, note: int) -> Pad:
        """The pad on `note`; ValueError, naming the notes that have one, if none has."""
        pad = self._pads.get(note)
        if pad is None:
            raise ValueError(f"no pad on note {note}; pads are on notes {self.notes()}")
        return pad

    def notes(self) -> list[int]:
        return sorted(self._pads)

    def snapshot(self) -> dict[int, Pad]:
        with self._lock:
            return dict(self._pads)

    def update(self, note: int, **changes: Any) -> Pad:
        """Change some fields of one pad; ValueError (pad unchanged) if the result is not valid.
        A new latent or class without new axis values starts the axes again from zero."""
        return self.change(note, lambda pad: changes)

    def set_dim(self, note: int, dim: int, value: float) -> Pad:
        if not 0 <= dim < self.latent_size:
            raise ValueError(f"dimension must be in range 0..{self.latent_size - 1}, got {dim}")

        def one_dim(pad: Pad) -> dict[str, Any]:
            latent = list(pad.latent)
            latent[dim] = value
            return {"latent": latent}

        return self.change(note, one_dim)

    def change(self, note: int, changes_of: Callable[[Pad], dict[str, Any]]) -> Pad:
        """Replace a pad by itself with `changes_of(pad)`, read and written under the lock: two
        threads changing two dimensions (or axes) at once both keep theirs."""
        with self._lock:
            pad = self.existing(note)
            changes = dict(changes_of(pad))
            if ("latent" in changes or "class_name" in changes) and "axes" not in changes:
                changes["axes"] = ()
            for key in ("latent", "timbre_direction", "axes"):
                if key in changes:
                    changes[key] = tuple(float(v) for v in changes[key])
            new = replace(pad, **changes)
            check_pad(new, self.class_names, self.latent_size)
            self._pads[note] = new
        self.on_change(note)
        return new

    def replace_all(self, pads: dict[int, Pad]) -> None:
        """Swap in a whole kit at once (checked first: a bad kit changes nothing)."""
        for pad in pads.values():
            check_pad(pad, self.class_names, self.latent_size)
        with self._lock:
            old = set(self._pads)
            self._pads = dict(pads)
        for note in sorted(old | set(pads)):
            self.on_change(note)
