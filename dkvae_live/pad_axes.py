"""Moving a pad along its class's timbre axes (decoder metadata ``dkvae.axes``).

A pad's ``latent`` is what plays; its ``axes`` say how far each axis moved it from the latent
it had before them. Setting an axis adds the change of value times the axis's direction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .axes import ClassAxes
from .contract import AXIS_NAMES
from .kit import KIT_DECIMALS
from .pads import AXIS_LIMIT, Pad

NO_AXIS = "none"  # the axis name /dkvae/pad/axes replies where a class has no axes


def axis_index(name: int | str) -> int:
    """An axis by name or by index; ValueError names the axes."""
    if isinstance(name, int) and not isinstance(name, bool):
        if 0 <= name < len(AXIS_NAMES):
            return name
        raise ValueError(f"axis index must be in range 0..{len(AXIS_NAMES) - 1}, got {name}")
    if name in AXIS_NAMES:
        return AXIS_NAMES.index(name)
    raise ValueError(f"unknown axis {name!r}; axes are {', '.join(AXIS_NAMES)}")


def values(pad: Pad) -> tuple[float, ...]:
    return pad.axes or (0.0,) * len(AXIS_NAMES)


def main_axes(pad: Pad, axes: Mapping[str, ClassAxes]) -> tuple[str, str]:
    """The names of the two axes ``/dkvae/pad/xy`` moves for the pad's class; ``none`` where
    the model has no axes for it."""
    class_axes = axes.get(pad.class_name)
    if class_axes is None:
        return NO_AXIS, NO_AXIS
    x, y = class_axes.main_axes()
    return AXIS_NAMES[x], AXIS_NAMES[y]


def move(
    pad: Pad, axes: Mapping[str, ClassAxes], targets: Mapping[int | str, float]
) -> dict[str, Any]:
    """The changes (latent and axes) that put each axis of `targets` (name or index: value)
    of `pad` at its value, in one step."""
    class_axes = axes.get(pad.class_name)
    if class_axes is None:
        raise ValueError(
            f"this model has no axes for class {pad.class_name!r} (add them with "
            "dkvae-export MODEL --axes-only --bank BANK)"
        )
    before = values(pad)
    now = list(before)
    for name, value in targets.items():
        if not -AXIS_LIMIT <= value <= AXIS_LIMIT:
            raise ValueError(
                f"axis value must be in range -{AXIS_LIMIT:g}..{AXIS_LIMIT:g}, got {value}"
            )
        now[axis_index(name)] = value
    step = class_axes.offset([a - b for a, b in zip(now, before, strict=True)])
    # at the kit file's precision, so that a kit saved now loads again as this very pad
    latent = [round(z + d, KIT_DECIMALS) for z, d in zip(pad.latent, step, strict=True)]
    return {"latent": latent, "axes": tuple(now)}
