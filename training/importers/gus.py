"""Import a folder of Gravis UltraSound patches (``.pat``), as FreePats ships its drum set.

A GUS patch (``GF1PATCH110``) is a 239-byte header (patch, instrument and layer headers) and,
per sample, a 96-byte header followed by the sample data: 8- or 16-bit, signed or unsigned,
little-endian, mono. Each sample is one sound at its recorded rate: a drum set's patches are
one-shots, and their loop points and envelopes are for sustained playback, which we ignore.

FreePats names its drum patches after their General MIDI note (``Drum_000/035_Kick_1.pat``):
that note labels the sound (``gm_notes``) before any name rule, as the SoundFont importer does.
A ``.txt`` beside a patch tells where its recording came from; where it says the GNU Free
Documentation License, that is the sound's licence instead of the folder's.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np

from ..bank_import import SoundSource

__all__ = ["GusError", "iter_gus_folder", "read_patch"]

_MAGIC = (b"GF1PATCH110\0", b"GF1PATCH100\0")
_HEADER_BYTES = 239
_SAMPLE_HEADER_BYTES = 96
_MODE_16BIT = 0x01
_MODE_UNSIGNED = 0x02
_GM_PREFIX = re.compile(r"^(\d{2,3})[_ -]+(.+)$")
_GFDL = re.compile(r"GNU\s+Free\s+Documentation\s+License", re.IGNORECASE)


class GusError(ValueError):
    """The file is not a GUS patch this reader understands."""


def read_patch(path: str | Path) -> list[tuple[np.ndarray, int]]:
    """The samples of a GUS patch: float32 ``[frames]`` in [-1, 1) and each one's rate."""
    path = Path(path)
    data = path.read_bytes()
    if data[:12] not in _MAGIC or len(data) < _HEADER_BYTES:
        raise GusError(f"{path}: not a GUS patch (no GF1PATCH110 header)")
    count = data[198]  # the first layer's sample count
    out: list[tuple[np.ndarray, int]] = []
    pos = _HEADER_BYTES
    for i in range(count):
        if pos + _SAMPLE_HEADER_BYTES > len(data):
            raise GusError(f"{path}: sample {i} header runs past the end of the file")
        size = struct.unpack_from("<I", data, pos + 8)[0]
        rate = struct.unpack_from("<H", data, pos + 20)[0]
        mode = data[pos + 55]
        start = pos + _SAMPLE_HEADER_BYTES
        if start + size > len(data) or rate <= 0:
            raise GusError(f"{path}: sample {i}: {size} bytes at {rate} Hz do not fit the file")
        raw = data[start : start + size]
        if mode & _MODE_16BIT:
            kind = "<u2" if mode & _MODE_UNSIGNED else "<i2"
            ints = np.frombuffer(raw[: size - size % 2], dtype=kind).astype(np.float32)
            audio = (ints - 32768.0 if mode & _MODE_UNSIGNED else ints) / 32768.0
        else:
            ints = np.frombuffer(raw, dtype=np.uint8 if mode & _MODE_UNSIGNED else np.int8)
            floats = ints.astype(np.float32)
            audio = (floats - 128.0 if mode & _MODE_UNSIGNED else floats) / 128.0
        out.append((audio.astype(np.float32), rate))
        pos = start + size
    return out


def _load(path: Path, index: int) -> tuple[np.ndarray, int]:
    audio, rate = read_patch(path)[index]
    return audio[:, None], rate


def iter_gus_folder(
    root: str | Path, *, kit: str, licence: str = "", package: str = ""
) -> Iterator[SoundSource]:
    """One :class:`SoundSource` per sample of each ``.pat`` in ``root`` (not recursive). The
    kit is one split group."""
    root = Path(root)
    for path in sorted(root.glob("*.pat")):
        try:
            samples = read_patch(path)
        except (OSError, GusError):
            samples = []  # read again by the loader, which reports it as unreadable
            count = 1
        else:
            count = len(samples)
        match = _GM_PREFIX.match(path.stem)
        notes = (int(match.group(1)),) if match and 0 <= int(match.group(1)) <= 127 else ()
        instrument = match.group(2) if match else path.stem
        note = path.with_suffix(".txt")
        own = licence
        if note.exists() and _GFDL.search(note.read_text(encoding="latin-1")):
            own = "GFDL-1.2+"
        for i in range(count):
            yield SoundSource(
                kit=kit,
                instrument=instrument,
                layer=i,
                source=str(path) + (f"#{i}" if count > 1 else ""),
                load=partial(_load, path, i),
                file_name=path.name,
                licence=own,
                package=package,
                gm_notes=notes,
                split_group=kit.lower(),
            )
