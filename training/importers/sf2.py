"""Import the drum samples of a SoundFont 2 file, labelled by General MIDI drum note.

The samples are read straight from the SF2's RIFF chunks (``sdta/smpl`` and ``sm24`` for the
audio, ``pdta`` for presets, instruments and sample headers); no synthesizer is involved. Only
drum presets (MIDI bank 128) are used, or every preset when the file has none (some drum-only
SoundFonts put their kits in bank 0); sound-effect and metronome sets are left out. Each sample
is imported once per pitch it is played at, however many presets and notes use it: a tom sample
that a preset spreads over three keys is three toms, each rendered at its pitch. The notes it is
played on label it (see ``gm_notes`` in :class:`SoundSource`). A file with several drum presets
is several kits, ``<file> <preset>``; a sound belongs to the first preset (by bank and program)
that plays it, so a TR-808 set's own samples make the kit ``... TR-808``.
Stereo samples stored as linked left/right mono samples are joined into one stereo sound.
Loop points are ignored: they are for sustained playback, not one-shots.
"""

from __future__ import annotations

import logging
import re
import struct
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr

from ..bank_import import SoundSource
from ..bank_splits import kit_family

__all__ = ["Sf2Error", "Sf2Sample", "SoundFont", "iter_sf2", "read_sf2"]

log = logging.getLogger(__name__)

DRUM_BANK = 128
_GEN_KEY_RANGE = 43
_GEN_VEL_RANGE = 44
_GEN_INSTRUMENT = 41
_GEN_SAMPLE_ID = 53
_GEN_COARSE_TUNE = 51
_GEN_FINE_TUNE = 52
_GEN_SCALE_TUNING = 56
_GEN_ROOT_KEY = 58
# A drum played more than two octaves from its recorded pitch is a sound effect, not a drum.
MAX_PITCH_CENTS = 2400
# Presets that are not drum kits although they sit in the drum bank.
_NOT_A_KIT = re.compile(r"\bsfx\b|effect|metronome", re.IGNORECASE)
_TYPE_RIGHT = 2
_TYPE_LEFT = 4
_TYPE_ROM = 0x8000


class Sf2Error(ValueError):
    """The file is not a SoundFont 2 this reader understands."""


@dataclass
class Sf2Sample:
    """One sample header, and where the drum presets play it."""

    index: int
    name: str
    start: int
    end: int
    sample_rate: int
    link: int
    kind: int
    root_key: int = 60
    correction_cents: int = 0
    notes: set[int] = field(default_factory=set)
    velocity_low: int = 127  # lowest velocity a drum preset plays it at
    # pitch (cents from the recorded pitch) -> the notes that play it so, and the first preset
    pitches: dict[int, set[int]] = field(default_factory=dict)
    preset_of: dict[int, str] = field(default_factory=dict)


@dataclass
class SoundFont:
    path: Path
    name: str
    copyright: str
    samples: list[Sf2Sample]
    drum_presets: list[str]
    _smpl: tuple[int, int]  # offset, length in bytes of the 16-bit sample data
    _sm24: tuple[int, int] | None

    def audio(self, sample: Sf2Sample) -> np.ndarray:
        """One sample's audio as float32 ``[frames]`` in [-1, 1)."""
        n = sample.end - sample.start
        if n <= 0 or sample.start < 0 or 2 * sample.end > self._smpl[1]:
            raise Sf2Error(f"sample {sample.name!r}: data range {sample.start}..{sample.end} bad")
        with self.path.open("rb") as fh:
            fh.seek(self._smpl[0] + 2 * sample.start)
            hi = np.frombuffer(fh.read(2 * n), dtype="<i2").astype(np.int32)
            if self._sm24 is not None and sample.end <= self._sm24[1]:
                fh.seek(self._sm24[0] + sample.start)
                lo = np.frombuffer(fh.read(n), dtype=np.uint8).astype(np.int32)
                return ((hi << 8) | lo).astype(np.float32) / float(1 << 23)
        return hi.astype(np.float32) / 32768.0


def _chunks(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    pos = start
    while pos + 8 <= end:
        cid, size = struct.unpack_from("<4sI", data, pos)
        yield cid, pos + 8, size
        pos += 8 + size + (size & 1)


def _records(blob: bytes, fmt: str) -> list[tuple]:
    size = struct.calcsize(fmt)
    return [struct.unpack_from(fmt, blob, i) for i in range(0, len(blob) - size + 1, size)]


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def read_sf2(path: str | Path) -> SoundFont:
    """Parse a SoundFont's headers (not its audio, which :meth:`SoundFont.audio` reads)."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise Sf2Error(f"{path}: not a SoundFont 2 file (no RIFF sfbk header)")
        size = struct.unpack_from("<I", head, 4)[0]
        # The headers are small; the sample data is only located here, not read.
        lists: dict[bytes, tuple[int, int]] = {}
        pos = 12
        end = min(8 + size, path.stat().st_size)
        while pos + 12 <= end:
            fh.seek(pos)
            cid, csize = struct.unpack("<4sI", fh.read(8))
            if cid == b"LIST":
                lists[fh.read(4)] = (pos + 12, csize - 4)
            pos += 8 + csize + (csize & 1)
        if b"sdta" not in lists or b"pdta" not in lists:
            raise Sf2Error(f"{path}: missing sdta or pdta list")
        fh.seek(lists[b"pdta"][0])
        pdta = fh.read(lists[b"pdta"][1])
        info: dict[bytes, bytes] = {}
        if b"INFO" in lists:
            fh.seek(lists[b"INFO"][0])
            blob = fh.read(lists[b"INFO"][1])
            info = {cid: blob[o : o + n] for cid, o, n in _chunks(blob, 0, len(blob))}
    smpl: tuple[int, int] | None = None
    sm24: tuple[int, int] | None = None
    # Walk sdta's sub-chunks without reading the audio.
    with path.open("rb") as fh:
        pos, stop = lists[b"sdta"]
        stop += pos
        while pos + 8 <= stop:
            fh.seek(pos)
            cid, csize = struct.unpack("<4sI", fh.read(8))
            if cid == b"smpl":
                smpl = (pos + 8, csize)
            elif cid == b"sm24":
                sm24 = (pos + 8, csize)
            pos += 8 + csize + (csize & 1)
    if smpl is None:
        raise Sf2Error(f"{path}: no smpl chunk")
    sub = {cid: pdta[o : o + n] for cid, o, n in _chunks(pdta, 0, len(pdta))}
    needed = (b"phdr", b"pbag", b"pgen", b"inst", b"ibag", b"igen", b"shdr")
    missing = [c.decode() for c in needed if c not in sub]
    if missing:
        raise Sf2Error(f"{path}: pdta lacks {missing}")
    phdr = _records(sub[b"phdr"], "<20sHHHIII")
    pbag = _records(sub[b"pbag"], "<HH")
    pgen = _records(sub[b"pgen"], "<HH")
    inst = _records(sub[b"inst"], "<20sH")
    ibag = _records(sub[b"ibag"], "<HH")
    igen = _records(sub[b"igen"], "<HH")
    shdr = _records(sub[b"shdr"], "<20sIIIIIBbHH")
    samples = [
        Sf2Sample(i, _name(r[0]), r[1], r[2], r[5], r[8], r[9], r[6], r[7])
        for i, r in enumerate(shdr[:-1])
    ]
    presets = phdr[:-1]  # the last record is the terminal "EOP"
    drum = [i for i, p in enumerate(presets) if p[2] == DRUM_BANK]
    if not drum:
        drum = list(range(len(presets)))
    drum = [p for p in drum if not _NOT_A_KIT.search(_name(presets[p][0]))]
    drum.sort(key=lambda p: (presets[p][2], presets[p][1], p))  # bank, program
    names = []
    for p in drum:
        preset = _name(presets[p][0])
        names.append(preset)
        for bag in range(phdr[p][3], phdr[p + 1][3]):
            gens = _generators(pgen, pbag, bag)
            if _GEN_INSTRUMENT not in gens:
                continue  # a global zone; its ranges only narrow the others, ignored here
            pkeys = _range(gens.get(_GEN_KEY_RANGE))
            i = gens[_GEN_INSTRUMENT]
            if i + 1 >= len(inst):
                continue
            defaults: dict[int, int] = {}
            for ibag_i in range(inst[i][1], inst[i + 1][1]):
                igens = _generators(igen, ibag, ibag_i)
                s = igens.get(_GEN_SAMPLE_ID)
                if s is None:
                    if ibag_i == inst[i][1]:
                        defaults = igens  # the instrument's global zone
                    continue
                if s >= len(samples):
                    continue
                igens = {**defaults, **igens}
                lo, hi = _range(igens.get(_GEN_KEY_RANGE))
                keys = range(max(lo, pkeys[0]), min(hi, pkeys[1]) + 1)
                sample = samples[s]
                sample.notes.update(keys)
                vlo = _range(igens.get(_GEN_VEL_RANGE))[0]
                sample.velocity_low = min(sample.velocity_low, vlo)
                for key in keys:
                    cents = _pitch_cents(sample, key, gens, igens)
                    if abs(cents) > MAX_PITCH_CENTS:
                        continue
                    sample.pitches.setdefault(cents, set()).add(key)
                    sample.preset_of.setdefault(cents, preset)
    return SoundFont(
        path=path,
        name=_name(info.get(b"INAM", b"")) or path.stem,
        copyright=_name(info.get(b"ICOP", b"")),
        samples=samples,
        drum_presets=names,
        _smpl=smpl,
        _sm24=sm24,
    )


def _generators(gens: list[tuple], bags: list[tuple], bag: int) -> dict[int, int]:
    if bag + 1 >= len(bags):
        return {}
    return {op: amount for op, amount in gens[bags[bag][0] : bags[bag + 1][0]]}


def _signed(amount: int | None, default: int = 0) -> int:
    if amount is None:
        return default
    return amount - 0x10000 if amount >= 0x8000 else amount


def _pitch_cents(
    sample: Sf2Sample, key: int, preset_gens: dict[int, int], inst_gens: dict[int, int]
) -> int:
    """How far from its recorded pitch a key plays a sample, in cents (SF2 2.04, 8.1.2): the
    key's distance from the root key, scaled by the scale tuning, plus coarse and fine tuning
    (instrument and preset zone add up) and the sample's own correction. Rounded to a
    semitone: closer than that is the same sound (and presets tune drums in semitones)."""
    root = _signed(inst_gens.get(_GEN_ROOT_KEY), -1)
    if not 0 <= root <= 127:
        root = sample.root_key if 0 <= sample.root_key <= 127 else 60
    scale = _signed(inst_gens.get(_GEN_SCALE_TUNING), 100) + _signed(
        preset_gens.get(_GEN_SCALE_TUNING)
    )
    coarse = _signed(inst_gens.get(_GEN_COARSE_TUNE)) + _signed(preset_gens.get(_GEN_COARSE_TUNE))
    fine = _signed(inst_gens.get(_GEN_FINE_TUNE)) + _signed(preset_gens.get(_GEN_FINE_TUNE))
    cents = (key - root) * scale + 100 * coarse + fine + sample.correction_cents
    return round(cents / 100.0) * 100


def _range(amount: int | None) -> tuple[int, int]:
    if amount is None:
        return 0, 127
    return amount & 0xFF, (amount >> 8) & 0xFF


_LAYER_SUFFIX = re.compile(
    r"(?:[\s_-]+\d{1,2}|[\s_-]*\((?:L|R|left|right)\)?|[\s_-]+(?:L|R|left|right))+$", re.IGNORECASE
)


def _instrument_name(sample_name: str) -> str:
    """A sample name without its layer number and stereo side: ``36-Pearl22Kick-3`` ->
    ``36-Pearl22Kick``, ``Snare-L`` -> ``Snare``."""
    return _LAYER_SUFFIX.sub("", sample_name) or sample_name


def iter_sf2(
    path: str | Path,
    *,
    kit: str | None = None,
    licence: str = "",
    package: str = "",
) -> Iterator[SoundSource]:
    """One :class:`SoundSource` per sample (or left/right pair) and pitch that a drum preset
    plays it at.

    ``kit`` defaults to the file's stem, followed by the preset's name when the file holds
    several kits; ``licence`` to the SoundFont's copyright field.
    """
    sfont = read_sf2(path)
    kit_name = kit or Path(path).stem
    several = len(sfont.drum_presets) > 1
    licence = licence or sfont.copyright
    used = [s for s in sfont.samples if s.notes and not s.kind & _TYPE_ROM]
    partners = _stereo_partners(sfont.samples, used)
    paired: set[int] = set()
    groups: dict[str, list[tuple[Sf2Sample, Sf2Sample | None]]] = defaultdict(list)
    for s in used:
        if s.index in paired:
            continue
        partner = partners.get(s.index)
        if partner is not None:
            left, right = (s, partner) if s.kind & _TYPE_LEFT else (partner, s)
            paired.update((left.index, right.index))
            groups[_instrument_name(left.name)].append((left, right))
        else:
            groups[_instrument_name(s.name)].append((s, None))
    for instrument, members in sorted(groups.items()):
        members.sort(key=lambda m: (m[0].velocity_low, m[0].name))
        for layer, (first, second) in enumerate(members):
            pitches = {c: set(n) for c, n in first.pitches.items()}
            for cents, notes in (second.pitches if second else {}).items():
                pitches.setdefault(cents, set()).update(notes)
            source = f"{Path(path).name}#{first.name}" + (f"+{second.name}" if second else "")
            if not pitches:
                continue  # only played too far from its recorded pitch
            kits = {
                cents: f"{kit_name} {preset}" if several else kit_name
                for cents in pitches
                for preset in [
                    first.preset_of.get(cents)
                    or (second.preset_of.get(cents, "") if second else "")
                ]
            }
            # All pitches of one sample on one side of the split: the kit that plays it closest
            # to its recorded pitch decides.
            split_group = kit_family(kits[min(pitches, key=abs)])
            for cents in sorted(pitches, key=abs):
                yield SoundSource(
                    kit=kits[cents],
                    instrument=instrument,
                    layer=layer,
                    source=source + (f"@{cents:+d}c" if cents else ""),
                    load=_Loader(sfont, first, second, cents),
                    file_name=first.name,
                    licence=licence,
                    package=package,
                    gm_notes=tuple(sorted(pitches[cents])),
                    split_group=split_group,
                )


def _stereo_partners(samples: list[Sf2Sample], used: list[Sf2Sample]) -> dict[int, Sf2Sample]:
    """Left/right partners: by the header's sample link when it points both ways, else (some
    files, FluidR3 among them, leave the link at 0) by name, e.g. ``Snare(L)`` and ``Snare(R)``,
    with the same rate."""
    out: dict[int, Sf2Sample] = {}
    by_index = {s.index: s for s in samples}
    by_name: dict[tuple[str, int, int], Sf2Sample] = {}
    for s in used:
        if s.kind & (_TYPE_LEFT | _TYPE_RIGHT):
            by_name[
                (_instrument_name(s.name), s.sample_rate, s.kind & (_TYPE_LEFT | _TYPE_RIGHT))
            ] = s
    for s in used:
        side = s.kind & (_TYPE_LEFT | _TYPE_RIGHT)
        if not side or side == (_TYPE_LEFT | _TYPE_RIGHT):
            continue
        other_side = _TYPE_RIGHT if side == _TYPE_LEFT else _TYPE_LEFT
        linked = by_index.get(s.link)
        if linked is not None and linked.link == s.index and linked.kind & other_side:
            out[s.index] = linked
            continue
        match = by_name.get((_instrument_name(s.name), s.sample_rate, other_side))
        if match is not None and match.index != s.index:
            out[s.index] = match
    return out


@dataclass(frozen=True)
class _Loader:
    sfont: SoundFont
    left: Sf2Sample
    right: Sf2Sample | None
    cents: int = 0  # played this far from its recorded pitch: read at a rate scaled so

    def __call__(self) -> tuple[np.ndarray, int]:
        a = self.sfont.audio(self.left)
        if self.right is None:
            out = a[:, None]
        else:
            b = self.sfont.audio(self.right)
            out = np.zeros((max(a.size, b.size), 2), dtype=np.float32)
            out[: a.size, 0] = a
            out[: b.size, 1] = b
        rate = self.left.sample_rate
        if self.cents:
            # Played at another pitch: the samples go by faster or slower; resampled back to the
            # sample's own rate so that the bank's file has a rate any reader takes.
            played = rate * 2.0 ** (self.cents / 1200.0)
            out = np.asarray(soxr.resample(out, played, rate), dtype=np.float32)
        return out, rate
