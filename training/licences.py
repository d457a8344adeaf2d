"""Which licences of training sounds a model's weights can carry, and filtering sounds by licence.

The project's decision (issue 19): trained weights are published under CC-BY-SA-4.0, with the
attribution of every kit they were trained on (a model card's kit table). Works under the
licences in :data:`COMPATIBLE_WITH_WEIGHTS` may be adapted and shared under CC-BY-SA-4.0:
public-domain dedications and permissive licences, CC BY of any version, and CC BY-SA 3.0 (and
its ports), which allows "a later version of this License with the same License Elements".
GPL and LGPL (any version) and the GFDL are not among them: CC-BY-SA-4.0 can flow into GPL-3,
not the other way. ``dkvae-bank --licences`` builds a bank from listed licences only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

WEIGHTS_LICENCE = "CC-BY-SA-4.0"

# Attribution at most: a model trained on these alone could be shared under any licence.
PERMISSIVE: tuple[str, ...] = (
    "CC0",
    "MIT",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "CC-BY-3.0",
    "CC-BY-4.0",
)
COMPATIBLE_WITH_WEIGHTS: tuple[str, ...] = (*PERMISSIVE, "CC-BY-SA-3.0", "CC-BY-SA-4.0")
# Names `--licences` accepts for a whole group.
GROUPS: dict[str, tuple[str, ...]] = {
    "permissive": PERMISSIVE,
    "compatible": COMPATIBLE_WITH_WEIGHTS,
}

# A Creative Commons licence ported to a jurisdiction: "CC-BY-SA-3.0-us" is CC-BY-SA-3.0 there.
_CC_PORT = re.compile(r"^(CC-BY(?:-SA)?-\d\.\d)-[A-Za-z]{2,3}$", re.IGNORECASE)


def parse_licences(text: str) -> frozenset[str]:
    """``"CC0,MIT"`` or ``"compatible"`` (see :data:`GROUPS`) -> the licence names, casefolded."""
    names: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        if item:
            names.update(n.casefold() for n in GROUPS.get(item.lower(), (item,)))
    if not names:
        raise ValueError(f"no licence in {text!r}: name some, e.g. CC0,MIT, or 'compatible'")
    return frozenset(names)


def base_licence(licence: str) -> str:
    """The licence a recorded one stands for: its first word (``"GPL-2+ with composition
    exception"`` -> ``"GPL-2+"``), a CC port without its jurisdiction; "" when unknown."""
    words = licence.split()
    if not words:
        return ""
    port = _CC_PORT.match(words[0])
    return port.group(1) if port else words[0]


def allowed(licence: str, names: Iterable[str]) -> bool:
    """Whether a recorded licence is one of ``names`` (exactly, or as :func:`base_licence`).
    An unknown (empty) licence is never allowed."""
    wanted = {n.casefold() for n in names}
    candidates = {licence.strip().casefold(), base_licence(licence).casefold()} - {""}
    return bool(candidates & wanted)


def compatible_with_weights(licence: str) -> bool:
    return allowed(licence, COMPATIBLE_WITH_WEIGHTS)
