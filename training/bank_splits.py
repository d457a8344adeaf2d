"""A bank's deterministic train/validation/test splits, each kit family whole on one side."""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace

from .bank_manifest import ManifestRow

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
_FAMILY_NOISE = re.compile(r"\b(v?\d+(\.\d+)*|lv2|the|kit|drumkit|drums?|h2|gm)\b")
# Kits that are the same recordings under another name (see shared/notes/data-sources.md).
KIT_FAMILY_ALIASES: dict[str, str] = {"gmrockkit": "blackpearl", "gmrock": "blackpearl"}
_FAMILY_PREFIXES = ("millo",)
# MuseScore General grew out of FluidR3 (the same author and samples): one family per preset.
_FAMILY_PREFIX_ALIASES = {"musescoregeneralfull": "fluidr"}


def kit_family(kit: str) -> str:
    """A kit's name without versions and decorations, so that releases of the same recordings
    (``The Black Pearl 1.0``, ``Black_Pearl_4_LV2``, ``GMRockKit``) share one split group."""
    text = re.sub(r"[_\-]+", " ", kit.lower())
    text = re.sub(r"[^a-z]", "", _FAMILY_NOISE.sub(" ", text))
    text = KIT_FAMILY_ALIASES.get(text, text)
    for prefix in _FAMILY_PREFIXES:
        if text.startswith(prefix):
            return prefix
    for prefix, alias in _FAMILY_PREFIX_ALIASES.items():
        if text.startswith(prefix):
            text = alias + text[len(prefix) :]
    return text or "unknown"


def _stable_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def assign_splits(
    rows: Sequence[ManifestRow],
    fractions: dict[str, float] | None = None,
    pinned: Mapping[str, str] | None = None,
) -> list[ManifestRow]:
    """Give every row a split, keeping each split group (by default a kit family) whole on one
    side, so the test split holds kits no other split has.

    Deterministic and independent of row order: within each style (acoustic, electronic) the
    groups are taken largest first (ties broken by a hash of the group name) and each goes to
    the split that most needs its classes: the sum over its sounds of their class's shortfall
    from the split's target share. Rows with no split group are grouped by their content hash.
    Groups named in ``pinned`` (group -> split) go to that split, and the others around them.
    """
    fractions = dict(fractions or SPLIT_FRACTIONS)
    if set(fractions) != set(SPLITS) or any(v < 0 for v in fractions.values()):
        raise ValueError(f"fractions must give {list(SPLITS)} non-negative shares")
    pinned = dict(pinned or {})
    if not set(pinned.values()) <= set(SPLITS):
        raise ValueError(f"pinned splits must be among {list(SPLITS)}")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[row.split_group or f"hash:{row.content_hash or row.id}"].append(i)
    strata: dict[str, list[tuple[str, list[int]]]] = defaultdict(list)
    for name, members in groups.items():
        style = Counter(rows[i].style for i in members).most_common(1)[0][0]
        strata[style].append((name, members))
    split_of: dict[int, str] = {}
    for style in sorted(strata):
        ordered = sorted(strata[style], key=lambda kv: (-len(kv[1]), _stable_hash(kv[0])))
        totals = Counter(rows[i].label for _, members in ordered for i in members)
        counts = {s: Counter[str]() for s in SPLITS}
        for name, members in ordered:  # the pinned first: the others fill in around them
            if name in pinned:
                counts[pinned[name]].update(rows[i].label for i in members)
                split_of.update((i, pinned[name]) for i in members)
        for name, members in ordered:
            if name in pinned:
                continue
            need = Counter(rows[i].label for i in members)
            shortfall = {
                s: sum(
                    n * (fractions[s] * totals[c] - counts[s][c]) / totals[c]
                    for c, n in need.items()
                )
                for s in SPLITS
            }
            split = max(SPLITS, key=lambda s: (shortfall[s], -SPLITS.index(s)))
            counts[split].update(need)
            for i in members:
                split_of[i] = split
    return [replace(row, split=split_of[i]) for i, row in enumerate(rows)]
