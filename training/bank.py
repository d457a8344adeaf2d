"""Drum banks: read, clean, deduplicate, split and cache drum one-shots.

A bank on disk is a folder ``<bank>/<class>/<file>.(wav|flac|aif|aiff)`` plus ``manifest.csv``
(one row per sound, documented in docs/banks.md). This module gathers the bank's public names;
each job has its own module:

- :mod:`.bank_manifest`: the manifest, read and written (or made up for a folder without one);
- :mod:`.bank_cleaning`: one sound into a fixed-length, peak-normalised training example;
- :mod:`.bank_duplicates`: near copies of a sound, within the bank and across its splits;
- :mod:`.bank_splits`: the deterministic train/validation/test splits by kit family;
- :mod:`.bank_loading`: :func:`load_split`, what training uses, with its cache;
- :mod:`.bank_import`: :func:`import_sources`, what the importers feed;
- :mod:`.bank_summary`: a bank's summary and its Markdown table of kits.
"""

from __future__ import annotations

from dkvae_live.labels import CLASS_NAMES_DEFAULT

from .bank_cleaning import Cleaned, CleanSettings, SkipSound, clean, content_hash, read_audio
from .bank_duplicates import cross_split_duplicates
from .bank_import import ImportReport, SoundSource, import_sources
from .bank_loading import BankArrays, LoadReport, load_bank, load_split
from .bank_manifest import (
    AUDIO_SUFFIXES,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    BankError,
    ManifestRow,
    read_manifest,
    write_manifest,
)
from .bank_splits import SPLIT_FRACTIONS, SPLITS, assign_splits, kit_family
from .bank_summary import kits_markdown, summarize

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
    "LoadReport",
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
    "load_bank",
    "load_split",
    "read_audio",
    "read_manifest",
    "summarize",
    "write_manifest",
]
