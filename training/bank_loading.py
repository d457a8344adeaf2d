"""Loading a bank for training: every usable sound cleaned, exact duplicates dropped, and the
result cached in one ``.npz`` keyed by the settings and by the size and modification time of
every source file, so a change to either rebuilds it."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .bank_cleaning import (
    Cleaned,
    CleanSettings,
    content_hash,
    load_and_clean,
    read_audio,
    with_progress_bar,
)
from .bank_manifest import ManifestRow, bank_rows, class_names_of
from .bank_splits import SPLITS, assign_splits

log = logging.getLogger(__name__)

# Bumped whenever the cleaning code changes what it produces, so old caches are not reused.
PROCESSING_VERSION = 1


@dataclass(frozen=True)
class BankArrays:
    audio: np.ndarray  # float32 [N, num_samples], mono, peak-normalised per sound
    labels: np.ndarray  # int64 [N], index into class_names
    gains: np.ndarray  # float32 [N], the peak gain removed by normalisation (loudness kept)
    class_names: tuple[str, ...]
    ids: tuple[str, ...]  # stable sound ids (manifest key)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class LoadReport:
    """What the last :func:`load_bank` did: whether the cache was used, and what was skipped."""

    cache_path: Path
    cache_hit: bool
    skipped: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0


def _cache_key(
    bank_dir: Path, rows: Sequence[ManifestRow], settings: CleanSettings, names: Sequence[str]
) -> str:
    digest = hashlib.sha1()
    header = {"version": PROCESSING_VERSION, "settings": asdict(settings), "classes": list(names)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for row in rows:
        try:
            st = (bank_dir / row.path).stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"{row.id}\0{row.path}\0{row.label}\0{row.split}\0{stamp}\n".encode())
    return digest.hexdigest()[:20]


def load_bank(
    bank_dir: str | Path,
    *,
    sample_rate: int = 44100,
    num_samples: int = 44100,
    cache_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    progress: bool = False,
) -> tuple[BankArrays, np.ndarray, LoadReport]:
    """Every usable sound of a bank, its split (``str`` array) and what happened.

    The cleaned arrays come from ``<cache_dir>/bank-<key>.npz`` when the key (settings, class
    names, and each file's id, label, split, size and mtime) matches; otherwise they are rebuilt
    and the cache is written. ``cache_dir`` defaults to ``<bank_dir>/.cache``.
    """
    bank = Path(bank_dir)
    settings = CleanSettings(sample_rate=sample_rate, num_samples=num_samples)
    rows = bank_rows(bank)
    names = class_names_of((r.label for r in rows), class_names)
    cache = Path(cache_dir) if cache_dir is not None else bank / ".cache"
    key = _cache_key(bank, rows, settings, names)
    cache_path = cache / f"bank-{key}.npz"
    if cache_path.exists():
        try:
            with np.load(cache_path, allow_pickle=False) as npz:
                arrays = BankArrays(
                    audio=npz["audio"],
                    labels=npz["labels"],
                    gains=npz["gains"],
                    class_names=tuple(str(s) for s in npz["class_names"]),
                    ids=tuple(str(s) for s in npz["ids"]),
                )
                splits = npz["splits"]
            log.debug("bank %s: using cache %s", bank, cache_path)
            return arrays, splits, LoadReport(cache_path, cache_hit=True)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("bank %s: cache %s unreadable (%s); rebuilding", bank, cache_path, exc)
    arrays, splits, report = _build(bank, rows, names, settings, progress)
    report.cache_path = cache_path
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".bank-{key}.{os.getpid()}.tmp.npz"
    np.savez(
        tmp,
        audio=arrays.audio,
        labels=arrays.labels,
        gains=arrays.gains,
        class_names=np.array(arrays.class_names, dtype=str),
        ids=np.array(arrays.ids, dtype=str),
        splits=splits,
    )
    os.replace(tmp, cache_path)
    log.info("bank %s: %d sounds cleaned and cached in %s", bank, len(arrays), cache_path)
    return arrays, splits, report


def _build(
    bank: Path,
    rows: Sequence[ManifestRow],
    names: Sequence[str],
    settings: CleanSettings,
    progress: bool,
) -> tuple[BankArrays, np.ndarray, LoadReport]:
    report = LoadReport(Path(), cache_hit=False)
    index = {name: i for i, name in enumerate(names)}
    kept: list[tuple[ManifestRow, Cleaned, str]] = []
    seen: dict[str, str] = {}
    for row in with_progress_bar(rows, progress, "cleaning"):
        if row.label not in index:
            continue
        loaded = load_and_clean(
            functools.partial(read_audio, bank / row.path), settings, report.skipped, row.path
        )
        if loaded is None:
            continue
        cleaned = loaded[2]
        digest = content_hash(cleaned.audio)
        if digest in seen:
            report.duplicates += 1
            log.info("skip %s: duplicate of %s", row.path, seen[digest])
            continue
        seen[digest] = row.id
        kept.append((replace(row, content_hash=digest), cleaned, digest))
    if any(not row.split for row, _, _ in kept):
        # Rows without a split (a manifest-less bank, or hand-added rows) get one; the others
        # keep theirs.
        assigned = assign_splits([row for row, _, _ in kept])
        kept = [(r if r.split else a, c, d) for a, (r, c, d) in zip(assigned, kept, strict=True)]
    n = len(kept)
    audio = np.zeros((n, settings.num_samples), dtype=np.float32)
    for i, (_, cleaned, _) in enumerate(kept):
        audio[i] = cleaned.audio
    arrays = BankArrays(
        audio=audio,
        labels=np.array([index[r.label] for r, _, _ in kept], dtype=np.int64),
        gains=np.array([c.gain for _, c, _ in kept], dtype=np.float32),
        class_names=tuple(names),
        ids=tuple(r.id for r, _, _ in kept),
    )
    splits = np.array([r.split for r, _, _ in kept], dtype=str)
    if report.skipped or report.duplicates:
        log.info(
            "bank %s: %d kept, %d skipped (%s), %d duplicates dropped",
            bank,
            n,
            sum(report.skipped.values()),
            ", ".join(f"{k}: {v}" for k, v in sorted(report.skipped.items())),
            report.duplicates,
        )
    return arrays, splits, report


def load_split(
    bank_dir: str | Path,
    split: str,
    *,
    sample_rate: int = 44100,
    num_samples: int = 44100,
    cache_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
) -> BankArrays:
    """The cleaned sounds of one split: ``"train"``, ``"validation"``, ``"test"`` or ``"all"``.

    ``class_names`` defaults to :data:`CLASS_NAMES_DEFAULT` followed by any other class the bank
    holds (sorted), so label indices agree across splits and banks.
    """
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be one of {[*SPLITS, 'all']}, got {split!r}")
    arrays, splits, _ = load_bank(
        bank_dir,
        sample_rate=sample_rate,
        num_samples=num_samples,
        cache_dir=cache_dir,
        class_names=class_names,
    )
    if split == "all":
        return arrays
    mask = splits == split
    return BankArrays(
        audio=arrays.audio[mask],
        labels=arrays.labels[mask],
        gains=arrays.gains[mask],
        class_names=arrays.class_names,
        ids=tuple(i for i, m in zip(arrays.ids, mask, strict=True) if m),
    )
