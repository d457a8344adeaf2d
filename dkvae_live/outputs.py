"""Which output pair each pad plays on: `--outputs`, so a DAW records each drum on its own track.

- ``stereo`` (the default): one pair, out_1/out_2, all pads mixed, as always.
- ``per-class``: a pair more per drum class of the model (kick_1/kick_2, snare_1/snare_2, ...);
  each pad plays on its class's pair.
- ``per-pad``: a pair more per `output` name in the kit (``output = "toms"``: toms_1/toms_2);
  a pad without one plays on the main pair alone.

In every mode the main pair carries the whole mix, so what is connected to the speakers keeps
sounding the same; the other pairs carry their pads only. Pairs exist on JACK only (PortAudio
and the offline render play the main pair). They are made when needed (the start, a kit or a
model with new names) and kept until the daemon stops, so a DAW's connections stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .pads import MAIN_OUTPUT, OUTPUT_NAME, Pad

STEREO, PER_CLASS, PER_PAD = "stereo", "per-class", "per-pad"
OUTPUT_MODES: tuple[str, ...] = (STEREO, PER_CLASS, PER_PAD)


def check_mode(mode: str) -> str:
    if mode not in OUTPUT_MODES:
        raise ValueError(f"outputs must be one of {', '.join(OUTPUT_MODES)}, got {mode!r}")
    return mode


def router(mode: str) -> Callable[[Pad], str]:
    """pad -> the name of the pair it plays on besides the main pair ("": none)."""
    check_mode(mode)
    if mode == PER_CLASS:
        return lambda pad: pad.class_name
    if mode == PER_PAD:
        return lambda pad: pad.output
    return lambda pad: ""


def pairs_wanted(mode: str, class_names: Iterable[str], pads: Iterable[Pad]) -> list[str]:
    """The pairs a mode wants besides the main one, in the order their ports are made: every
    class of the model (a class no pad plays too, so a DAW session finds the same ports
    whatever the kit), or every `output` of the kit's pads."""
    check_mode(mode)
    if mode == PER_CLASS:
        names = list(class_names)
    elif mode == PER_PAD:
        names = sorted({pad.output for pad in pads} - {""})
    else:
        names = []
    return list(dict.fromkeys(names))


def usable(name: str) -> bool:
    """Whether `name` can name a pair (a model's class name might not; its pads then play on
    the main pair alone). Kits' `output` names are checked when they load (pads.check_pad)."""
    return name != MAIN_OUTPUT and OUTPUT_NAME.fullmatch(name) is not None
