"""A bank's manifest: one row per sound (``manifest.csv``; columns in :data:`MANIFEST_COLUMNS`,
documented in docs/banks.md), read and written, or made up for a folder without one (the seed
project's layout: the folder name is the class)."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from dkvae_live.labels import CLASS_NAMES_DEFAULT

MANIFEST_NAME = "manifest.csv"
AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")


class BankError(Exception):
    """A bank folder or manifest is unusable (not: one bad sound, which is skipped)."""


@dataclass(frozen=True)
class ManifestRow:
    """One sound of a bank. ``path`` is relative to the bank folder, with forward slashes."""

    id: str
    path: str
    label: str
    kit: str = ""
    instrument: str = ""
    layer: int = 0
    source: str = ""
    package: str = ""
    licence: str = ""
    split_group: str = ""
    split: str = ""
    source_sample_rate: int = 0
    channels: int = 0
    source_duration_s: float = 0.0
    duration_s: float = 0.0
    gain: float = 0.0
    content_hash: str = ""
    style: str = ""  # "acoustic" or "electronic" (labels.kit_style)
    instrument_type: str = ""  # named percussion: "clap", "cowbell"... (labels.instrument_type)


MANIFEST_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ManifestRow))
_INT_COLUMNS = {"layer", "source_sample_rate", "channels"}
_FLOAT_COLUMNS = {"source_duration_s", "duration_s", "gain"}


def read_manifest(bank_dir: str | Path) -> list[ManifestRow]:
    """The rows of ``<bank_dir>/manifest.csv``; raises :class:`BankError` if it is malformed."""
    path = Path(bank_dir) / MANIFEST_NAME
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"id", "path", "label"} - set(reader.fieldnames or ())
            if missing:
                raise BankError(f"{path}: missing columns {sorted(missing)}")
            rows = []
            for n, raw in enumerate(reader, start=2):
                values: dict[str, object] = {}
                for name in MANIFEST_COLUMNS:
                    text = raw.get(name) or ""
                    if name in _INT_COLUMNS:
                        values[name] = int(text) if text else 0
                    elif name in _FLOAT_COLUMNS:
                        values[name] = float(text) if text else 0.0
                    else:
                        values[name] = text
                if not values["id"] or not values["path"] or not values["label"]:
                    raise BankError(f"{path}:{n}: id, path and label must not be empty")
                rows.append(ManifestRow(**values))  # type: ignore[arg-type]
    except (OSError, ValueError) as exc:
        raise BankError(f"{path}: cannot read manifest: {exc}") from exc
    ids = Counter(r.id for r in rows)
    dupes = [i for i, c in ids.items() if c > 1]
    if dupes:
        raise BankError(f"{path}: duplicate ids {dupes[:5]}")
    return rows


def write_manifest(bank_dir: str | Path, rows: Iterable[ManifestRow]) -> Path:
    """Write the manifest atomically (a reader never sees half a file)."""
    path = Path(bank_dir) / MANIFEST_NAME
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for row in rows:
            values = asdict(row)
            for name in _FLOAT_COLUMNS:
                values[name] = f"{values[name]:.6g}"
            writer.writerow(values)
    os.replace(tmp, path)
    return path


def _scan_folder_bank(bank_dir: Path) -> list[ManifestRow]:
    """Rows for a bank without a manifest: ``<class>/<file>``, class = folder name."""
    rows = []
    for class_dir in sorted(p for p in bank_dir.iterdir() if p.is_dir()):
        if class_dir.name.startswith("."):
            continue
        for file in sorted(class_dir.rglob("*")):
            if file.is_file() and file.suffix.lower() in AUDIO_SUFFIXES:
                rel = file.relative_to(bank_dir).as_posix()
                stem = file.relative_to(class_dir).with_suffix("").as_posix()
                rows.append(
                    ManifestRow(
                        id=rel.rsplit(".", 1)[0],
                        path=rel,
                        label=class_dir.name,
                        instrument=stem,
                        source=rel,
                    )
                )
    return rows


def bank_rows(bank_dir: Path) -> list[ManifestRow]:
    """The rows of a bank: its manifest's, or for a folder without one its ``<class>/<file>``
    sounds."""
    if not bank_dir.is_dir():
        raise BankError(f"{bank_dir}: no such bank folder")
    if (bank_dir / MANIFEST_NAME).exists():
        return read_manifest(bank_dir)
    rows = _scan_folder_bank(bank_dir)
    if not rows:
        raise BankError(f"{bank_dir}: no manifest and no <class>/<file> audio files")
    return rows


def class_names_of(labels: Iterable[str], class_names: Sequence[str] | None) -> tuple[str, ...]:
    """``class_names`` when given; else the default classes followed by any other of
    ``labels`` (sorted), so that label indices agree across splits and banks."""
    if class_names is not None:
        names = tuple(class_names)
        if not names or len(set(names)) != len(names):
            raise ValueError("class_names must be non-empty and without duplicates")
        return names
    present = set(labels)
    extras = sorted(present - set(CLASS_NAMES_DEFAULT))
    return CLASS_NAMES_DEFAULT + tuple(extras)
