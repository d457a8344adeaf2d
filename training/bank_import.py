"""Importing sounds into a bank: what the importers (``dkvae_training.importers``) feed.

Each sound is labelled by the ordered rules of :mod:`dkvae_live.labels`, cleaned, dropped when
it copies a sound already in the bank, and written into the bank; then the deterministic splits
of the whole bank are reassigned. Sounds that cannot be read, are silent or too short are skipped
with one log line each and counted; nothing aborts an import.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from dkvae_live.labels import LabelRules, instrument_type, kit_style

from .bank_cleaning import (
    UNREADABLE,
    SkipSound,
    clean,
    content_hash,
    count_skip,
    load_and_clean,
    one_line,
    read_audio,
    with_progress_bar,
)
from .bank_duplicates import (
    IMPORT_SETTINGS,
    Fingerprints,
    near_copy_threshold,
)
from .bank_manifest import MANIFEST_NAME, ManifestRow, read_manifest, write_manifest
from .bank_splits import assign_splits, kit_family

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SoundSource:
    """One sound an importer found, before labelling.

    ``load`` returns float32 audio ``[frames, channels]`` and its sample rate. When ``copy_from``
    is set the file is copied into the bank byte for byte; otherwise the loaded audio is written
    as FLAC. ``gm_notes`` (SoundFont importers: the General MIDI drum notes that play the sound)
    label it by note before any name rule: the class most of its notes give wins, a tie falls
    back to the name rules. ``split_group`` defaults to the kit family (:func:`kit_family`).
    """

    kit: str
    instrument: str
    layer: int
    source: str
    load: Callable[[], tuple[np.ndarray, int]]
    file_name: str = ""
    licence: str = ""
    package: str = ""
    copy_from: Path | None = None
    gm_notes: tuple[int, ...] = ()
    split_group: str = ""
    style: str = ""  # default: labels.kit_style(kit, instrument)


@dataclass
class ImportReport:
    """Counts of one import: what was added, and why the rest was not."""

    added: Counter[str] = field(default_factory=Counter)  # per class
    skipped: Counter[str] = field(default_factory=Counter)  # per reason
    duplicates: int = 0
    near_duplicates: int = 0  # near-copies of a sound already in the bank, merged into it
    excluded: list[str] = field(default_factory=list)  # a rule said "leave out"
    unlabeled: list[str] = field(default_factory=list)  # no rule matched

    def lines(self) -> list[str]:
        out = [
            f"added {sum(self.added.values())} sounds: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.added.items())),
            f"dropped {self.duplicates} exact duplicates (same processed audio); "
            f"merged {self.near_duplicates} near-copies into the sound they copy",
            f"left out {len(self.excluded)} by an exclusion rule, "
            f"{len(self.unlabeled)} that no rule labels",
        ]
        if self.skipped:
            out.append(
                f"skipped {sum(self.skipped.values())} unusable files: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items()))
            )
        return out


_SLUG = re.compile(r"[^A-Za-z0-9.+-]+")


def _slug(text: str) -> str:
    return _SLUG.sub("_", text).strip("_.") or "x"


def import_sources(
    bank_dir: str | Path,
    sources: Iterable[SoundSource],
    *,
    rules: LabelRules | None = None,
    progress: bool = False,
    total: int | None = None,
    pinned: Mapping[str, str] | None = None,
) -> ImportReport:
    """Label, clean, deduplicate and write sounds into a bank, then rewrite its manifest.

    Existing rows stay; a sound whose processed audio equals one already in the bank (from any
    kit) is dropped as a duplicate, so importing the same kit twice adds nothing. Splits of the
    whole bank are reassigned after the import (see :func:`assign_splits`; ``pinned``: split
    groups whose split is fixed).
    """
    bank = Path(bank_dir)
    bank.mkdir(parents=True, exist_ok=True)
    rules = rules or LabelRules()
    rows = read_manifest(bank) if (bank / MANIFEST_NAME).exists() else []
    seen = {r.content_hash: r.id for r in rows if r.content_hash}
    ids = {r.id for r in rows}
    report = ImportReport()
    settings = IMPORT_SETTINGS
    prints = Fingerprints()
    for i, row in enumerate(rows):
        try:
            audio, rate = read_audio(bank / row.path)
            prints.add(i, clean(audio, rate, settings).audio)
        except (SkipSound, *UNREADABLE):
            continue  # a bank file that went bad is reported by load_split, not here
    for src in with_progress_bar(sources, progress, "importing", total):
        what = f"{src.kit}: {src.instrument} ({src.file_name or src.source})"
        matched, label = rules.classify(src.instrument, src.file_name, src.kit, src.gm_notes)
        if label is None:
            (report.excluded if matched else report.unlabeled).append(what)
            log.info("leave out %s: %s", what, "excluded" if matched else "no rule labels it")
            continue
        loaded = load_and_clean(src.load, settings, report.skipped, what)
        if loaded is None:
            continue
        audio, rate, cleaned = loaded
        digest = content_hash(cleaned.audio)
        if digest in seen:
            report.duplicates += 1
            log.info("skip %s: duplicate of %s", what, seen[digest])
            continue
        near, similarity = prints.nearest(cleaned.audio)
        if near is not None and similarity >= near_copy_threshold(rows[near].kit, src.kit):
            # The same sample at another gain, the same recording edited or re-encoded in
            # another kit, or the same preset in another SoundFont: one sound.
            report.near_duplicates += 1
            log.info("merge %s into %s: a near-copy (%.3f)", what, rows[near].id, similarity)
            continue
        sound_id = _unique_id(f"{_slug(src.kit)}__{_slug(src.instrument)}__{src.layer}", ids)
        suffix = src.copy_from.suffix.lower() if src.copy_from is not None else ".flac"
        rel = f"{label}/{sound_id}{suffix}"
        target = bank / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if src.copy_from is not None:
                shutil.copyfile(src.copy_from, target)
            else:
                sf.write(str(target), audio, rate, format="FLAC", subtype="PCM_24")
        except (OSError, RuntimeError, ValueError) as exc:
            count_skip(report.skipped, what, f"cannot write: {one_line(exc)}")
            continue
        seen[digest] = sound_id
        ids.add(sound_id)
        channels = audio.shape[1] if audio.ndim == 2 else 1
        rows.append(
            ManifestRow(
                id=sound_id,
                path=rel,
                label=label,
                kit=src.kit,
                instrument=src.instrument,
                layer=src.layer,
                source=src.source,
                package=src.package,
                licence=src.licence,
                split_group=src.split_group or kit_family(src.kit),
                source_sample_rate=rate,
                channels=channels,
                source_duration_s=len(audio) / rate,
                duration_s=cleaned.duration_s,
                gain=cleaned.gain,
                content_hash=digest,
                style=src.style or kit_style(src.kit, src.instrument),
                instrument_type=instrument_type(src.instrument or src.file_name, src.gm_notes),
            )
        )
        prints.add(len(rows) - 1, cleaned.audio)
        report.added[label] += 1
    write_manifest(bank, assign_splits(rows, pinned=pinned))
    return report


def _unique_id(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"
