"""Near copies: the same recording, edited, re-encoded or at another gain, in two kits or
twice in one. Exact copies are found by :func:`~.bank_cleaning.content_hash`."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .bank_cleaning import UNREADABLE, CleanSettings, SkipSound, clean, content_hash, read_audio
from .bank_manifest import read_manifest
from .bank_splits import kit_family

# The settings under which importers deduplicate and measure durations: a generous 2 s cap.
IMPORT_SETTINGS = CleanSettings(sample_rate=44100, num_samples=2 * 44100)


# Two sounds whose first FINGERPRINT_SAMPLES (after trimming, at 44.1 kHz) have a cosine
# similarity above this are taken for the same recording, edited, in two kits. Within one kit
# the bar is higher: two velocity layers of one drum are two hits, alike but not copies, unless
# one is the other at another gain.
NEAR_DUPLICATE_SIMILARITY = 0.95
SAME_KIT_COPY_SIMILARITY = 0.99
FINGERPRINT_SAMPLES = 8192


def near_copy_threshold(kit_a: str, kit_b: str) -> float:
    """The similarity above which a sound of ``kit_b`` copies one of ``kit_a``."""
    same = kit_family(kit_a) == kit_family(kit_b)
    return SAME_KIT_COPY_SIMILARITY if same else NEAR_DUPLICATE_SIMILARITY


class Fingerprints:
    """Unit-norm onsets of the sounds in a bank, for finding near duplicates."""

    def __init__(self) -> None:
        self._data = np.zeros((64, FINGERPRINT_SAMPLES), dtype=np.float32)
        self._rows: list[int] = []

    def add(self, row: int, audio: np.ndarray) -> None:
        v = fingerprint(audio)
        if len(self._rows) == len(self._data):
            self._data = np.concatenate([self._data, np.zeros_like(self._data)])
        self._data[len(self._rows)] = v
        self._rows.append(row)

    def nearest(self, audio: np.ndarray) -> tuple[int | None, float]:
        if not self._rows:
            return None, 0.0
        sims = np.abs(self._data[: len(self._rows)] @ fingerprint(audio))
        best = int(np.argmax(sims))
        return self._rows[best], float(sims[best])


def fingerprint(audio: np.ndarray) -> np.ndarray:
    """The first :data:`FINGERPRINT_SAMPLES` of a cleaned sound, at unit norm."""
    v = np.zeros(FINGERPRINT_SAMPLES, dtype=np.float32)
    head = audio[:FINGERPRINT_SAMPLES]
    v[: head.size] = head
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def cross_split_duplicates(bank_dir: str | Path) -> tuple[int, int]:
    """(exact, near) copies across splits, read from the bank's audio (not its manifest): sounds
    of one processed content hash on more sides than one, and pairs on two sides with a
    fingerprint similarity of :data:`NEAR_DUPLICATE_SIMILARITY` or more. Both should be 0."""
    bank = Path(bank_dir)
    rows = read_manifest(bank)
    settings = IMPORT_SETTINGS
    prints = np.zeros((len(rows), FINGERPRINT_SAMPLES), dtype=np.float32)
    by_hash: dict[str, set[str]] = defaultdict(set)
    for i, r in enumerate(rows):
        try:
            audio, rate = read_audio(bank / r.path)
            cleaned = clean(audio, rate, settings).audio
        except (SkipSound, *UNREADABLE):
            continue
        prints[i] = fingerprint(cleaned)
        by_hash[content_hash(cleaned)].add(r.split)
    exact = sum(len(sides) - 1 for sides in by_hash.values())
    splits = np.array([r.split for r in rows])
    near = 0
    for start in range(0, len(rows), 256):
        sims = np.abs(prints[start : start + 256] @ prints.T)
        close = sims >= NEAR_DUPLICATE_SIMILARITY
        for a, b in zip(*np.nonzero(close), strict=True):
            if start + a < b and splits[start + a] != splits[b]:
                near += 1
    return exact, near
