"""Drum banks: read, clean, deduplicate, split and cache drum one-shots.

A bank on disk is a folder ``<bank>/<class>/<file>.(wav|flac|aif|aiff)`` plus ``manifest.csv``
(one row per sound; columns in :data:`MANIFEST_COLUMNS`, documented in docs/banks.md). A folder
without a manifest (the seed project's layout) is read too: the folder name is the class and the
split comes from a hash of the processed audio.

:func:`load_split` is what training uses. It cleans every sound (mono, resampled, leading silence
trimmed, tail cut with a short fade, fixed length, peak-normalised with the gain kept), drops exact
duplicates of the processed audio, and caches the result in one ``.npz`` keyed by the settings and
by the size and modification time of every source file, so a change to either rebuilds it.

:func:`import_sources` is what the importers (``dkvae_training.importers``) feed: it labels each
sound by the ordered rules of :mod:`dkvae_live.labels`, drops duplicates, writes the audio
into the bank, and reassigns the deterministic splits. Sounds that cannot be read, are silent or
too short are skipped with one log line each and counted; nothing aborts an import.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from dkvae_live.labels import CLASS_NAMES_DEFAULT, STYLES, LabelRules, instrument_type, kit_style

__all__ = [
    "AUDIO_SUFFIXES",
    "CLASS_NAMES_DEFAULT",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "SPLITS",
    "SPLIT_FRACTIONS",
    "BankArrays",
    "BankError",
    "CleanSettings",
    "Cleaned",
    "ImportReport",
    "ManifestRow",
    "SkipSound",
    "SoundSource",
    "assign_splits",
    "clean",
    "content_hash",
    "cross_split_duplicates",
    "import_sources",
    "kit_family",
    "kits_markdown",
    "load_split",
    "read_audio",
    "read_manifest",
    "summarize",
    "write_manifest",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")
SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
# Bumped whenever the cleaning code changes what it produces, so old caches are not reused.
PROCESSING_VERSION = 1
# The settings under which importers deduplicate and measure durations: a generous 2 s cap.
IMPORT_SAMPLE_RATE = 44100
IMPORT_NUM_SAMPLES = 2 * IMPORT_SAMPLE_RATE


class BankError(Exception):
    """A bank folder or manifest is unusable (not: one bad sound, which is skipped)."""


class SkipSound(Exception):
    """One sound cannot be used; the message says why in a few words."""


# --------------------------------------------------------------------------------------------
# Cleaning one sound


@dataclass(frozen=True)
class CleanSettings:
    """How a sound is turned into a fixed-length training example."""

    sample_rate: int = 44100
    num_samples: int = 44100
    trim_db: float = -40.0  # leading samples quieter than this (relative to the peak) are cut
    tail_db: float = -60.0  # the tail is cut after the last sample louder than this
    fade_ms: float = 10.0  # fade-out where a tail is cut
    silence_dbfs: float = -80.0  # a sound whose peak is below this is silent
    min_ms: float = 5.0  # a sound shorter than this after trimming is too short

    def __post_init__(self) -> None:
        if self.sample_rate < 1000:
            raise ValueError(f"sample_rate must be at least 1000 Hz, got {self.sample_rate}")
        if self.num_samples < 16:
            raise ValueError(f"num_samples must be at least 16, got {self.num_samples}")


@dataclass(frozen=True)
class Cleaned:
    audio: np.ndarray  # float32 [num_samples], peak 1.0
    gain: float  # the peak removed by normalisation
    duration_s: float  # length after trimming and the tail cut, before padding or the cap


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 ``[frames, channels]`` and its sample rate."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data, int(rate)


def clean(audio: np.ndarray, sample_rate: int, settings: CleanSettings) -> Cleaned:
    """Mono, resample, trim leading silence, cut the tail, fix the length, normalise the peak.

    ``audio`` is ``[frames]`` or ``[frames, channels]``. Raises :class:`SkipSound` for an empty,
    non-finite, silent or too short sound.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32)
    elif x.ndim != 1:
        raise SkipSound(f"audio has {x.ndim} dimensions")
    if x.size == 0:
        raise SkipSound("empty (no samples)")
    if not np.all(np.isfinite(x)):
        raise SkipSound("non-finite samples")
    if sample_rate != settings.sample_rate:
        if sample_rate <= 0:
            raise SkipSound(f"bad sample rate {sample_rate}")
        x = np.asarray(soxr.resample(x, sample_rate, settings.sample_rate), dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak < 10.0 ** (settings.silence_dbfs / 20.0):
        level = 20.0 * np.log10(peak) if peak > 0 else float("-inf")
        raise SkipSound(f"silent (peak {level:.0f} dBFS)")
    magnitude = np.abs(x)
    start = int(np.argmax(magnitude >= peak * 10.0 ** (settings.trim_db / 20.0)))
    loud = np.flatnonzero(magnitude >= peak * 10.0 ** (settings.tail_db / 20.0))
    end = int(loud[-1]) + 1
    tail_cut = end < x.size
    x = x[start:end]
    min_samples = max(1, round(settings.min_ms * settings.sample_rate / 1000.0))
    if x.size < min_samples:
        ms = 1000.0 * x.size / settings.sample_rate
        raise SkipSound(f"too short ({ms:.1f} ms after trimming, minimum {settings.min_ms} ms)")
    duration_s = x.size / settings.sample_rate
    if x.size > settings.num_samples:
        x = x[: settings.num_samples]
        tail_cut = True
    x = x.copy()
    if tail_cut:
        fade = min(round(settings.fade_ms * settings.sample_rate / 1000.0), x.size // 4)
        if fade > 1:
            x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    out = np.zeros(settings.num_samples, dtype=np.float32)
    out[: x.size] = x
    gain = float(np.max(np.abs(out)))
    if gain <= 0.0:
        raise SkipSound("silent after trimming")
    out /= gain
    return Cleaned(out, gain, duration_s)


def content_hash(audio: np.ndarray) -> str:
    """Hash of processed audio, quantised to 16 bits: copies of the same sample data in other
    containers (WAV, FLAC, float WAV, an SF2) hash alike. A re-encoding at another bit depth
    is a near duplicate, not an exact one; the importers keep it in its original's split."""
    q = np.round(np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0) * 32767.0)
    return hashlib.sha1(q.astype("<i2").tobytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# The manifest


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


def _bank_rows(bank_dir: Path) -> list[ManifestRow]:
    if not bank_dir.is_dir():
        raise BankError(f"{bank_dir}: no such bank folder")
    if (bank_dir / MANIFEST_NAME).exists():
        return read_manifest(bank_dir)
    rows = _scan_folder_bank(bank_dir)
    if not rows:
        raise BankError(f"{bank_dir}: no manifest and no <class>/<file> audio files")
    return rows


# --------------------------------------------------------------------------------------------
# Splits


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
    rows: Sequence[ManifestRow], fractions: dict[str, float] | None = None
) -> list[ManifestRow]:
    """Give every row a split, keeping each split group (by default a kit family) whole on one
    side, so the test split holds kits no other split has.

    Deterministic and independent of row order: within each style (acoustic, electronic) the
    groups are taken largest first (ties broken by a hash of the group name) and each goes to
    the split that most needs its classes: the sum over its sounds of their class's shortfall
    from the split's target share. Rows with no split group are grouped by their content hash.
    """
    fractions = dict(fractions or SPLIT_FRACTIONS)
    if set(fractions) != set(SPLITS) or any(v < 0 for v in fractions.values()):
        raise ValueError(f"fractions must give {list(SPLITS)} non-negative shares")
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
        for _, members in ordered:
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


def cross_split_duplicates(bank_dir: str | Path) -> tuple[int, int]:
    """(exact, near) copies across splits, read from the bank's audio (not its manifest): sounds
    of one processed content hash on more sides than one, and pairs on two sides with a
    fingerprint similarity of :data:`NEAR_DUPLICATE_SIMILARITY` or more. Both should be 0."""
    bank = Path(bank_dir)
    rows = read_manifest(bank)
    settings = CleanSettings(sample_rate=IMPORT_SAMPLE_RATE, num_samples=IMPORT_NUM_SAMPLES)
    prints = np.zeros((len(rows), FINGERPRINT_SAMPLES), dtype=np.float32)
    by_hash: dict[str, set[str]] = defaultdict(set)
    for i, r in enumerate(rows):
        try:
            audio, rate = read_audio(bank / r.path)
            cleaned = clean(audio, rate, settings).audio
        except (SkipSound, OSError, RuntimeError, ValueError, EOFError):
            continue
        prints[i] = _fingerprint(cleaned)
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


# --------------------------------------------------------------------------------------------
# Loading with a cache


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


def _resolve_class_names(
    labels: Iterable[str], class_names: Sequence[str] | None
) -> tuple[str, ...]:
    if class_names is not None:
        names = tuple(class_names)
        if not names or len(set(names)) != len(names):
            raise ValueError("class_names must be non-empty and without duplicates")
        return names
    present = set(labels)
    extras = sorted(present - set(CLASS_NAMES_DEFAULT))
    return CLASS_NAMES_DEFAULT + tuple(extras)


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
    rows = _bank_rows(bank)
    names = _resolve_class_names((r.label for r in rows), class_names)
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
    for row in _progress(rows, progress, "cleaning"):
        if row.label not in index:
            continue
        try:
            audio, rate = read_audio(bank / row.path)
            cleaned = clean(audio, rate, settings)
        except SkipSound as exc:
            _skip(report.skipped, row.path, str(exc))
            continue
        except (OSError, RuntimeError, ValueError, EOFError) as exc:
            _skip(report.skipped, row.path, f"unreadable: {_oneline(exc)}")
            continue
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


# --------------------------------------------------------------------------------------------
# Importing


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


def _oneline(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _skip(counter: Counter[str], what: str, reason: str) -> None:
    log.warning("skip %s: %s", what, reason)
    counter[reason.split(" (")[0].split(":")[0]] += 1


def _progress(items: Iterable, enabled: bool, desc: str, total: int | None = None) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, unit="sound", leave=False)


def import_sources(
    bank_dir: str | Path,
    sources: Iterable[SoundSource],
    *,
    rules: LabelRules | None = None,
    progress: bool = False,
    total: int | None = None,
) -> ImportReport:
    """Label, clean, deduplicate and write sounds into a bank, then rewrite its manifest.

    Existing rows stay; a sound whose processed audio equals one already in the bank (from any
    kit) is dropped as a duplicate, so importing the same kit twice adds nothing. Splits of the
    whole bank are reassigned after the import (see :func:`assign_splits`).
    """
    bank = Path(bank_dir)
    bank.mkdir(parents=True, exist_ok=True)
    rules = rules or LabelRules()
    rows = read_manifest(bank) if (bank / MANIFEST_NAME).exists() else []
    seen = {r.content_hash: r.id for r in rows if r.content_hash}
    ids = {r.id for r in rows}
    report = ImportReport()
    settings = CleanSettings(sample_rate=IMPORT_SAMPLE_RATE, num_samples=IMPORT_NUM_SAMPLES)
    prints = _Fingerprints()
    for i, row in enumerate(rows):
        try:
            audio, rate = read_audio(bank / row.path)
            prints.add(i, clean(audio, rate, settings).audio)
        except (SkipSound, OSError, RuntimeError, ValueError, EOFError):
            continue  # a bank file that went bad is reported by load_split, not here
    for src in _progress(sources, progress, "importing", total):
        what = f"{src.kit}: {src.instrument} ({src.file_name or src.source})"
        matched, label = rules.classify(src.instrument, src.file_name, src.kit, src.gm_notes)
        if label is None:
            (report.excluded if matched else report.unlabeled).append(what)
            log.info("leave out %s: %s", what, "excluded" if matched else "no rule labels it")
            continue
        try:
            audio, rate = src.load()
            cleaned = clean(audio, rate, settings)
        except SkipSound as exc:
            _skip(report.skipped, what, str(exc))
            continue
        except (OSError, RuntimeError, ValueError, EOFError) as exc:
            _skip(report.skipped, what, f"unreadable: {_oneline(exc)}")
            continue
        digest = content_hash(cleaned.audio)
        if digest in seen:
            report.duplicates += 1
            log.info("skip %s: duplicate of %s", what, seen[digest])
            continue
        near, similarity = prints.nearest(cleaned.audio)
        if near is not None and similarity >= _near_copy_threshold(rows[near].kit, src.kit):
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
            _skip(report.skipped, what, f"cannot write: {_oneline(exc)}")
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
    write_manifest(bank, assign_splits(rows))
    return report


# Two sounds whose first FINGERPRINT_SAMPLES (after trimming, at 44.1 kHz) have a cosine
# similarity above this are taken for the same recording, edited, in two kits. Within one kit
# the bar is higher: two velocity layers of one drum are two hits, alike but not copies, unless
# one is the other at another gain.
NEAR_DUPLICATE_SIMILARITY = 0.95
SAME_KIT_COPY_SIMILARITY = 0.99
FINGERPRINT_SAMPLES = 8192


def _near_copy_threshold(kit_a: str, kit_b: str) -> float:
    same = kit_family(kit_a) == kit_family(kit_b)
    return SAME_KIT_COPY_SIMILARITY if same else NEAR_DUPLICATE_SIMILARITY


class _Fingerprints:
    """Unit-norm onsets of the sounds in a bank, for finding near duplicates."""

    def __init__(self) -> None:
        self._data = np.zeros((64, FINGERPRINT_SAMPLES), dtype=np.float32)
        self._rows: list[int] = []

    def add(self, row: int, audio: np.ndarray) -> None:
        v = _fingerprint(audio)
        if len(self._rows) == len(self._data):
            self._data = np.concatenate([self._data, np.zeros_like(self._data)])
        self._data[len(self._rows)] = v
        self._rows.append(row)

    def nearest(self, audio: np.ndarray) -> tuple[int | None, float]:
        if not self._rows:
            return None, 0.0
        sims = np.abs(self._data[: len(self._rows)] @ _fingerprint(audio))
        best = int(np.argmax(sims))
        return self._rows[best], float(sims[best])


def _fingerprint(audio: np.ndarray) -> np.ndarray:
    v = np.zeros(FINGERPRINT_SAMPLES, dtype=np.float32)
    head = audio[:FINGERPRINT_SAMPLES]
    v[: head.size] = head
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def kits_markdown(bank_dir: str | Path) -> str:
    """A Markdown table of a bank's kits: package, licence, style, sounds per split and class.
    docs/banks.md and a model card's licence section are written from it."""
    rows = _bank_rows(Path(bank_dir))
    by_kit: dict[str, list[ManifestRow]] = defaultdict(list)
    for r in rows:
        by_kit[r.kit or "-"].append(r)
    names = _resolve_class_names((r.label for r in rows), None)
    names = tuple(n for n in names if any(r.label == n for r in rows))
    header = ["kit", "package", "licence", "style", "split", "sounds", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kit in sorted(by_kit, key=str.lower):
        members = by_kit[kit]
        labels = Counter(r.label for r in members)

        def common(column: str, members: list[ManifestRow] = members) -> str:
            values = Counter(getattr(r, column) or "-" for r in members)
            return ", ".join(v for v, _ in values.most_common())

        cells = [kit, common("package"), common("licence"), common("style"), common("split")]
        cells += [str(len(members)), *(str(labels[n]) for n in names)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _unique_id(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


# --------------------------------------------------------------------------------------------
# Summary


def summarize(bank_dir: str | Path) -> str:
    """A text summary of a bank from its manifest: counts per class and split, durations,
    kits and licences."""
    bank = Path(bank_dir)
    rows = _bank_rows(bank)
    labels = _resolve_class_names((r.label for r in rows), None)
    labels = tuple(lbl for lbl in labels if any(r.label == lbl for r in rows))
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        table[r.label][r.split or "?"] += 1
    split_names = [*SPLITS] + (["?"] if any(not r.split for r in rows) else [])
    width = max([len("class"), *(len(lbl) for lbl in labels)])
    lines = [f"bank {bank}: {len(rows)} sounds, {len({r.kit for r in rows})} kits"]
    header = f"{'class':<{width}} " + " ".join(f"{s:>10}" for s in split_names)
    header += f" {'total':>7} {'median s':>9} {'max s':>7}"
    lines.append(header)
    for lbl in labels:
        durations = [r.duration_s for r in rows if r.label == lbl and r.duration_s > 0]
        med = f"{np.median(durations):9.2f}" if durations else f"{'-':>9}"
        top = f"{max(durations):7.2f}" if durations else f"{'-':>7}"
        counts = " ".join(f"{table[lbl][s]:>10}" for s in split_names)
        lines.append(f"{lbl:<{width}} {counts} {sum(table[lbl].values()):>7} {med} {top}")
    totals = Counter(r.split or "?" for r in rows)
    lines.append(
        f"{'all':<{width}} "
        + " ".join(f"{totals[s]:>10}" for s in split_names)
        + f" {len(rows):>7}"
    )
    styles = [*STYLES, *sorted({r.style or "?" for r in rows} - set(STYLES))]
    by_style = Counter((r.label, r.style or "?") for r in rows)
    lines.append("")
    lines.append(f"{'class':<{width}} " + " ".join(f"{s:>10}" for s in styles) + "  electronic %")
    for name in [*labels, "all"]:
        per_style = [
            sum(by_style[(x, s)] for x in labels) if name == "all" else by_style[(name, s)]
            for s in styles
        ]
        share = 100.0 * per_style[styles.index("electronic")] / max(1, sum(per_style))
        lines.append(
            f"{name:<{width}} " + " ".join(f"{c:>10}" for c in per_style) + f"  {share:11.1f}"
        )
    kit_splits: dict[str, set[str]] = defaultdict(set)
    kit_styles: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        kit_splits[r.kit or "-"].add(r.split or "?")
        kit_styles[r.kit or "-"][r.style or "?"] += 1
    for split in SPLITS:
        only = sorted(k for k, sides in kit_splits.items() if sides == {split})
        kits_by_style = Counter(kit_styles[k].most_common(1)[0][0] for k in only)
        lines.append(
            f"kits only in {split}: {len(only)} ("
            + ", ".join(f"{n} {st}" for st, n in sorted(kits_by_style.items()))
            + ")"
        )
    licences = Counter(r.licence or "unknown" for r in rows)
    lines.append("licences: " + ", ".join(f"{k} ({v})" for k, v in licences.most_common()))
    kits = Counter(r.kit or "-" for r in rows)
    lines.append("kits: " + ", ".join(f"{k} ({v})" for k, v in sorted(kits.items())))
    return "\n".join(lines)
