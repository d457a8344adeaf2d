"""Render DrumSynth presets (``.ds``) to mono one-shots, and import them as bank sounds.

DrumSynth (Paul Kellett, mda) describes a drum sound as a small INI file: a tone whose pitch
falls from ``F1`` to ``F2``, filtered white noise, two overtone oscillators (mixed, FM, ring
modulated, or the "808 cymbal" pulse bank), two narrow noise bands, a resonant low-pass with its
own envelope, and bit/rate reduction. LMMS ships 764 of them (``lmms-common``,
``usr/share/lmms/samples/drumsynth/<folder>/*.ds``, GPL-2+ data: we only read them).

This is our own vectorised numpy/scipy renderer of that format, written to sound like LMMS's
engine (``src/core/DrumSynth.cpp``, used as a reference for the algorithm only). What it
follows, so that the presets sound as their authors heard them:

- the engine runs at 44.1 kHz and its envelope times are 44.1 kHz samples; other output rates
  are rendered at 44.1 kHz and resampled (``engine_rate`` runs the engine at another rate);
- envelopes are ``time,level`` points (level in %) joined by straight lines; ``Stretch`` (%,
  clamped to 20-1000) scales every envelope time, ``Tuning`` (semitones) every frequency;
- the tone, noise and noise bands run until the end of the 1200-sample block in which their
  envelope ends (the engine works in such blocks), the overtones stop at their envelopes' end;
  the sound is ``2400 + 1200 * floor(longest envelope / 1200)`` samples long;
- ``Droop`` makes the tone's pitch fall exponentially, reaching ``F2`` at the end of its
  *unstretched* envelope (the engine computes the rate before applying ``Stretch``);
- levels: each component's ``Level`` is squared (128 -> 16384 on a 16-bit scale), ``[General]
  Level`` is a gain in dB, and the sum is hard clipped at 32700 (or, with distortion on, at the
  loudest component's level), as the engine does before writing 16-bit samples.

Envelope lines of any length are read whole (LMMS 1.2.2 stops reading a file at a line of 200
characters or more, which changes 4 of its presets; later LMMS reads them whole too).

Checked against LMMS 1.2.2 (``bench/drumsynth_vs_lmms.py``): ``lmms render`` runs DrumSynth at
88.2 kHz (its default 2x oversampling) and keeps every second sample, which moves the
per-sample filters an octave up (darker positive noise slopes, brighter filtered presets).
``render(p, 88200, engine_rate=88200)[::2]`` reproduces LMMS's render closely; the default,
44.1 kHz, is the rate the presets were made at (and what LMMS plays when it processes at 44.1 kHz).

The noise is random: two renders of one preset differ sample by sample (a seed derived from the
preset's name keeps a render reproducible). Compare envelopes and spectra, not samples.
"""

from __future__ import annotations

import logging
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter, resample_poly

from ..bank_import import SoundSource

__all__ = [
    "ENGINE_RATE",
    "DrumSynthError",
    "Envelope",
    "Preset",
    "iter_drumsynth",
    "read_preset",
    "render",
]

log = logging.getLogger(__name__)

ENGINE_RATE = 44100  # the rate DrumSynth's times and filters are defined at
_BLOCK = 1200  # the engine switches components off at the end of such a block
_FULL_SCALE = 32768.0  # the engine's 16-bit scale; render() divides by it
_CLIP = 32700.0
_SEMITONE = 1.0594631
_FILTER_BLOCK = 32  # samples per coefficient update of the time-varying filters


class DrumSynthError(ValueError):
    """A ``.ds`` file that cannot be read, or a preset that renders no usable sound."""


# --------------------------------------------------------------------------------- the preset


@dataclass(frozen=True)
class Envelope:
    """Breakpoints ``(time in 44.1 kHz samples, level in %)``, in file order."""

    points: tuple[tuple[float, float], ...]

    @property
    def end(self) -> float:
        """Time of the last point (unstretched)."""
        return self.points[-1][0]

    def curve(self, n: int, stretch: float) -> np.ndarray:
        """Level (1.0 = 100 %) at samples ``0..n-1``; the last level holds after the end."""
        times = np.array([p[0] for p in self.points], dtype=np.float64) * stretch
        levels = np.array([p[1] for p in self.points], dtype=np.float64) * 0.01
        times[0] = 0.0  # the engine starts at the first level whatever its time
        times = np.maximum.accumulate(times)
        return np.interp(np.arange(n, dtype=np.float64), times, levels)


_DEFAULT_ENVELOPE = Envelope(((0.0, 0.0), (100.0, 0.0)))


@dataclass(frozen=True)
class General:
    stretch: float = 100.0  # % of every envelope time
    level: float = 0.0  # dB
    tuning: float = 0.0  # semitones
    filter: int = 0  # 1: the resonant filter on everything
    resonance: float = 0.0  # 0-100
    highpass: int = 0  # 1: subtract the input from the filter's output
    filter_env: Envelope = _DEFAULT_ENVELOPE  # cut-off, 0-100


@dataclass(frozen=True)
class Tone:
    on: bool = False
    level: int = 128
    f1: float = 200.0  # Hz at the start
    f2: float = 120.0  # Hz at the end of the envelope
    droop: float = 0.0  # 0: linear sweep; > 0: exponential fall, faster when larger
    phase: float = 90.0  # degrees
    envelope: Envelope = _DEFAULT_ENVELOPE


@dataclass(frozen=True)
class Noise:
    on: bool = False
    level: int = 0
    slope: int = 0  # -100 (dark) .. 100 (bright)
    envelope: Envelope = _DEFAULT_ENVELOPE


@dataclass(frozen=True)
class Overtones:
    on: bool = False
    level: int = 128
    f1: float = 200.0
    f2: float = 120.0
    wave1: int = 0  # 0 sine, 1 rectified sine, 2 triangle, 3 saw, 4 square
    wave2: int = 0
    track1: bool = False  # F1 follows the tone's pitch (as a ratio to the tone's F1)
    track2: bool = False
    method: int = 2  # 0 mix, 1 FM, 2 ring modulation, 3 "808 cymbal"
    param: int = 50  # mix balance / modulation depth, 0-100
    filter: int = 0  # 1: the resonant filter on the overtones only
    envelope1: Envelope = _DEFAULT_ENVELOPE
    envelope2: Envelope = _DEFAULT_ENVELOPE


@dataclass(frozen=True)
class NoiseBand:
    on: bool = False
    level: int = 128
    f: float = 1000.0  # centre, Hz
    df: int = 50  # band width, 0-100
    envelope: Envelope = _DEFAULT_ENVELOPE


@dataclass(frozen=True)
class Distortion:
    on: bool = False
    clipping: int = 0  # dB of gain into the clipper
    bits: int = 0  # each step drops 2 bits
    rate: int = 0  # 0-7: hold 1, 2, 3, 4, 8, 10, 20, 8 samples


@dataclass(frozen=True)
class Preset:
    name: str
    version: int  # 1 or 2
    general: General
    tone: Tone
    noise: Noise
    overtones: Overtones
    band1: NoiseBand
    band2: NoiseBand
    distortion: Distortion
    comment: str = ""

    @property
    def stretch(self) -> float:
        """The time scale the engine applies (clamped ``Stretch / 100``)."""
        return min(max(0.01 * self.general.stretch, 0.2), 10.0)

    @property
    def tune(self) -> float:
        """The frequency ratio ``Tuning`` applies."""
        return float(_SEMITONE**self.general.tuning)

    def active_ends(self, time_scale: float | None = None) -> list[float]:
        """End times of the envelopes of the components that are on, in engine samples.

        ``time_scale`` defaults to :attr:`stretch` (44.1 kHz samples).
        """
        scale = self.stretch if time_scale is None else time_scale
        ends = []
        if self.tone.on:
            ends.append(self.tone.envelope.end)
        if self.noise.on:
            ends.append(self.noise.envelope.end)
        if self.overtones.on:
            ends += [self.overtones.envelope1.end, self.overtones.envelope2.end]
        for band in (self.band1, self.band2):
            if band.on:
                ends.append(band.envelope.end)
        return [e * scale for e in ends]

    def length(self, time_scale: float | None = None) -> int:
        """Samples the engine renders (before any cap); 44.1 kHz unless ``time_scale`` says."""
        longest = max(self.active_ends(time_scale), default=0.0)
        return 2 * _BLOCK + _BLOCK * int(longest // _BLOCK)

    @property
    def audible(self) -> bool:
        return bool(self.active_ends())


# ------------------------------------------------------------------------------------ parsing

_INT = re.compile(r"\s*([+-]?\d+)")
_FLOAT = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_VERSION = re.compile(r"drumsynth\s+v\s*([12])", re.IGNORECASE)


class _Ini:
    """The sections of a ``.ds`` file; like the engine, the first occurrence of a name wins."""

    def __init__(self, text: str, where: str) -> None:
        self.where = where
        self.sections: dict[str, dict[str, str]] = {}
        current: dict[str, str] | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith((";", "#")):
                continue
            if line.startswith("["):
                name = line[1:].split("]", 1)[0].strip().lower()
                current = None if name in self.sections else {}
                if current is not None:
                    self.sections[name] = current
                continue
            if current is None or "=" not in line:
                continue
            key, value = line.split("=", 1)
            current.setdefault(key.strip().lower(), value.strip())

    def raw(self, section: str, key: str) -> str:
        return self.sections.get(section.lower(), {}).get(key.lower(), "")

    def _number(self, section: str, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self.raw(section, key)
        if value == "":
            return None
        m = pattern.match(value)
        if m is None:
            raise DrumSynthError(f"{self.where}: [{section}] {key}={value!r} is not {what}")
        return m.group(1)

    def integer(self, section: str, key: str, default: int) -> int:
        """Like the engine's ``%d``: the leading integer (``"100.0"`` -> 100)."""
        text = self._number(section, key, _INT, "an integer")
        return default if text is None else int(text)

    def real(self, section: str, key: str, default: float) -> float:
        text = self._number(section, key, _FLOAT, "a number")
        value = default if text is None else float(text)
        if not math.isfinite(value):
            raise DrumSynthError(f"{self.where}: [{section}] {key} is not finite")
        return value

    def flag(self, section: str, key: str) -> bool:
        return self.integer(section, key, 0) == 1

    def envelope(self, section: str, key: str) -> Envelope:
        value = self.raw(section, key)
        if value == "":
            return _DEFAULT_ENVELOPE
        points = []
        for item in value.split():
            time, sep, level = item.partition(",")
            t, lv = _FLOAT.fullmatch(time), _FLOAT.fullmatch(level)
            if not sep or t is None or lv is None:
                raise DrumSynthError(
                    f"{self.where}: [{section}] {key}: bad envelope point {item!r} "
                    "(want time,level)"
                )
            points.append((float(t.group(1)), float(lv.group(1))))
        return Envelope(tuple(points))


def parse_preset(text: str, name: str, where: str = "<text>") -> Preset:
    """Parse the text of a ``.ds`` file (``where`` names it in errors)."""
    ini = _Ini(text, where)
    version = _VERSION.match(ini.raw("General", "Version"))
    if version is None:
        found = ini.raw("General", "Version")
        raise DrumSynthError(
            f"{where}: [General] Version={found!r}: not a DrumSynth v1 or v2 preset"
        )
    general = General(
        stretch=ini.real("General", "Stretch", 100.0),
        level=ini.real("General", "Level", 0.0),
        tuning=ini.real("General", "Tuning", 0.0),
        filter=ini.integer("General", "Filter", 0),
        resonance=ini.real("General", "Resonance", 0.0),
        highpass=ini.integer("General", "HighPass", 0),
        filter_env=ini.envelope("General", "FilterEnv"),
    )
    tone = Tone(
        on=ini.flag("Tone", "On"),
        level=ini.integer("Tone", "Level", 128),
        f1=ini.real("Tone", "F1", 200.0),
        f2=ini.real("Tone", "F2", 120.0),
        droop=ini.real("Tone", "Droop", 0.0),
        phase=ini.real("Tone", "Phase", 90.0),
        envelope=ini.envelope("Tone", "Envelope"),
    )
    noise = Noise(
        on=ini.flag("Noise", "On"),
        level=ini.integer("Noise", "Level", 0),
        slope=ini.integer("Noise", "Slope", 0),
        envelope=ini.envelope("Noise", "Envelope"),
    )
    overtones = Overtones(
        on=ini.flag("Overtones", "On"),
        level=ini.integer("Overtones", "Level", 128),
        f1=ini.real("Overtones", "F1", 200.0),
        f2=ini.real("Overtones", "F2", 120.0),
        wave1=ini.integer("Overtones", "Wave1", 0),
        wave2=ini.integer("Overtones", "Wave2", 0),
        track1=ini.flag("Overtones", "Track1"),
        track2=ini.flag("Overtones", "Track2"),
        method=ini.integer("Overtones", "Method", 2),
        param=ini.integer("Overtones", "Param", 50),
        filter=ini.integer("Overtones", "Filter", 0),
        envelope1=ini.envelope("Overtones", "Envelope1"),
        envelope2=ini.envelope("Overtones", "Envelope2"),
    )
    bands = [
        NoiseBand(
            on=ini.flag(sec, "On"),
            level=ini.integer(sec, "Level", 128),
            f=ini.real(sec, "F", 1000.0),
            df=ini.integer(sec, "dF", 50),
            envelope=ini.envelope(sec, "Envelope"),
        )
        for sec in ("NoiseBand", "NoiseBand2")
    ]
    distortion = Distortion(
        on=ini.flag("Distortion", "On"),
        clipping=ini.integer("Distortion", "Clipping", 0),
        bits=ini.integer("Distortion", "Bits", 0),
        rate=ini.integer("Distortion", "Rate", 0),
    )
    return Preset(
        name=name,
        version=int(version.group(1)),
        general=general,
        tone=tone,
        noise=noise,
        overtones=overtones,
        band1=bands[0],
        band2=bands[1],
        distortion=distortion,
        comment=ini.raw("General", "Comment"),
    )


def read_preset(path: str | Path) -> Preset:
    """Read a ``.ds`` file; :class:`DrumSynthError` names the file and key of bad input."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DrumSynthError(f"{path}: cannot read: {exc}") from exc
    # the presets are Windows-era files: Latin-1 never fails and keeps every byte
    return parse_preset(data.decode("latin-1"), path.stem.replace("_", " "), str(path))


# ---------------------------------------------------------------------------------- rendering


def _active_span(end: float, n: int) -> int:
    """Samples a block-switched component sounds: to the end of its envelope's last block."""
    return min(n, _BLOCK * max(1, math.ceil(end / _BLOCK)))


def _waveform(phase: np.ndarray, form: int) -> np.ndarray:
    if form == 0:
        return np.sin(phase)
    if form == 1:
        return np.abs(2.0 * np.sin(0.5 * phase)) - 1.0
    cycle = np.mod(phase / (2 * np.pi), 1.0)
    if form == 2:
        return 1.0 - 4.0 * np.abs(cycle - 0.5)
    if form == 3:
        return 2.0 * cycle - 1.0
    return np.where(cycle < 0.5, 1.0, -1.0)


def _segments(coefs: np.ndarray) -> list[tuple[int, int]]:
    """Runs of equal rows of ``coefs`` (one row per filter block), as ``(first, stop)``."""
    if len(coefs) == 0:
        return []
    change = np.flatnonzero(np.any(np.diff(coefs, axis=0) != 0, axis=1)) + 1
    starts = np.concatenate(([0], change))
    stops = np.concatenate((change, [len(coefs)]))
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


class _TwoPole:
    """A second-order filter whose coefficients change per block, keeping its own state.

    Each run of blocks with equal coefficients goes through ``lfilter``. Between runs the state
    is carried in the filter's own variables (``state``), converted to ``lfilter``'s through
    the response to silence: with no input, a second-order filter's output is fixed by its first
    two samples, so a changing coefficient never clicks.
    """

    def state_response(self, coef: np.ndarray) -> tuple[float, float]:
        """The first two output samples of the current state with zero input."""
        raise NotImplementedError

    def transfer(self, coef: np.ndarray) -> tuple[list[float], list[float]]:
        raise NotImplementedError

    def advance(self, coef: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Update the state after the block ``x -> y``."""
        raise NotImplementedError

    def run(self, x: np.ndarray, coefs: np.ndarray) -> np.ndarray:
        y = np.empty_like(x)
        for first, stop in _segments(coefs):
            lo, hi = first * _FILTER_BLOCK, min(len(x), stop * _FILTER_BLOCK)
            coef = coefs[first]
            b, a = self.transfer(coef)
            y0, y1 = self.state_response(coef)
            zi = np.array([y0, y1 + a[1] * y0])
            y[lo:hi], _ = lfilter(b, a, x[lo:hi], zi=zi)
            self.advance(coef, x[lo:hi], y[lo:hi])
        return y


class _ResonantLowPass(_TwoPole):
    """DrumSynth's main filter: two one-pole low-passes, the band between them fed back.

    ``coef`` = (pole, feedback gain). Per sample: ``u = x + k (v1 - v2)``,
    ``v1 = p v1 + (1 - p) u``, ``v2 = p v2 + (1 - p) v1``, output ``v2``.
    """

    def __init__(self) -> None:
        self.v1 = 0.0
        self.v2 = 0.0

    def transfer(self, coef: np.ndarray) -> tuple[list[float], list[float]]:
        p, k = float(coef[0]), float(coef[1])
        g = 1.0 - p
        return [g * g, 0.0, 0.0], [1.0, -(2 * p + k * g * p), p * p + k * g * p]

    def state_response(self, coef: np.ndarray) -> tuple[float, float]:
        p, k = float(coef[0]), float(coef[1])
        g = 1.0 - p
        v1, v2 = self.v1, self.v2
        out = []
        for _ in range(2):
            u = k * (v1 - v2)
            v1 = p * v1 + g * u
            v2 = p * v2 + g * v1
            out.append(v2)
        return out[0], out[1]

    def advance(self, coef: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        p = float(coef[0])
        before = float(y[-2]) if len(y) > 1 else self.v2
        self.v2 = float(y[-1])
        self.v1 = (self.v2 - p * before) / (1.0 - p)


class _CymbalBandPass(_TwoPole):
    """The "808 cymbal" band-pass: ``s0 += f s1; s1 += f (x + x[-1] - q s1 - s0)``; ``y = s1``.

    ``coef`` = (f, q).
    """

    def __init__(self) -> None:
        self.s0 = 0.0
        self.s1 = 0.0
        self.x_prev = 0.0

    def transfer(self, coef: np.ndarray) -> tuple[list[float], list[float]]:
        f, q = float(coef[0]), float(coef[1])
        return [f, 0.0, -f], [1.0, f * f + f * q - 2.0, 1.0 - f * q]

    def state_response(self, coef: np.ndarray) -> tuple[float, float]:
        f, q = float(coef[0]), float(coef[1])
        s0, s1, x_prev = self.s0, self.s1, self.x_prev
        out = []
        for _ in range(2):
            s0 = s0 + f * s1
            s1 = s1 + f * (x_prev - q * s1 - s0)
            x_prev = 0.0
            out.append(s1)
        return out[0], out[1]

    def advance(self, coef: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        f = float(coef[0])
        # s0 integrates f * s1 of the previous sample: the old s1, then all but the last output
        self.s0 += f * (self.s1 + float(np.sum(y[:-1], dtype=np.float64)))
        self.s1 = float(y[-1])
        self.x_prev = float(x[-1])


def _per_block(values: np.ndarray) -> np.ndarray:
    """One value per filter block: the value at the block's middle."""
    mid = np.arange(len(values))[_FILTER_BLOCK // 2 :: _FILTER_BLOCK]
    if len(mid) < math.ceil(len(values) / _FILTER_BLOCK):
        mid = np.append(mid, len(values) - 1)
    return values[mid]


def _tone(p: Preset, n: int, fs: float, ts: float) -> tuple[np.ndarray, np.ndarray]:
    """The tone (16-bit scale) and its running phase over all ``n`` samples (overtone sync)."""
    tone = p.tone
    f1 = p.tune * 2 * np.pi * tone.f1 / fs
    if abs(f1) < 0.001:
        f1 = 0.001
    f2 = p.tune * 2 * np.pi * tone.f2 / fs
    t = np.arange(n, dtype=np.float64)
    span = _active_span(tone.envelope.end * ts, n) if tone.on else 0
    unstretched_end = tone.envelope.end
    if tone.droop > 0 and unstretched_end > 0:
        # exponential fall from f1, passing f2 at the end of the *unstretched* envelope
        rate = -4.0 * 10 ** ((tone.droop - 20.0) / 30.0) / unstretched_end
        floor = f1 + (f2 - f1) / (1.0 - math.exp(rate * unstretched_end))
        step = floor + (f1 - floor) * np.exp(t[:span] * rate)
        tail = floor
    else:
        end = max(tone.envelope.end * ts, 1e-9)
        step = f1 + (t[:span] / end) * (f2 - f1)
        tail = f2
    steps = np.full(n, tail)
    steps[:span] = step
    phase = math.radians(tone.phase) + np.cumsum(steps)
    out = np.zeros(n)
    if span:
        env = tone.envelope.curve(span, ts)
        out[:span] = tone.level * tone.level * env * np.sin(phase[:span])
    return out, phase


def _noise(p: Preset, n: int, rng: np.random.Generator, ts: float) -> np.ndarray:
    noise = p.noise
    span = _active_span(noise.envelope.end * ts, n)
    level = float(noise.level * noise.level)
    s = noise.slope
    if s < 0:  # one-pole low-pass: darker
        b, a, gain = [1.0 + s / 105.0], [1.0, s / 105.0], (1.0 + 0.0005 * s * s) * level
    else:  # two-zero high-pass: brighter
        b, a, gain = [1.0, -s / 50.0, abs(s) / 100.0], [1.0], level
    white = rng.uniform(-1.0, 1.0, span)
    out = np.zeros(n)
    out[:span] = lfilter(b, a, white) * gain * noise.envelope.curve(span, ts)
    return out


def _band(
    p: Preset, band: NoiseBand, n: int, rng: np.random.Generator, fs: float, ts: float
) -> np.ndarray:
    """A sine whose frequency jumps at random around ``F``, held for a few samples each."""
    span = _active_span(band.envelope.end * ts, n)
    centre = p.tune * 2 * np.pi * band.f / fs
    width = band.df * band.df / (10000.0 - 6600.0 * (math.sqrt(max(centre, 0.0)) - 0.19))
    hold = max(1, 1 + int((40.0 - band.df / 2.5) / (width + 1.0 + centre)))
    jumps = rng.uniform(-0.5, 0.5, span // hold + 1)
    steps = centre + width * np.repeat(jumps, hold)[:span]
    out = np.zeros(n)
    level = float(band.level * band.level)
    env = band.envelope.curve(span, ts)
    out[:span] = np.cos(np.pi / 4 + np.cumsum(steps)) * env * level
    return out


def _overtone_env(env: Envelope, n: int, stretch: float) -> np.ndarray:
    curve = env.curve(n, stretch)
    curve[math.ceil(env.end * stretch) :] = 0.0  # silent after the last point
    return curve


def _overtones(p: Preset, n: int, tone_phase: np.ndarray, fs: float, ts: float) -> np.ndarray:
    ot = p.overtones
    level = float(ot.level * ot.level)
    env1 = _overtone_env(ot.envelope1, n, ts)
    env2 = _overtone_env(ot.envelope2, n, ts)
    w1 = p.tune * 2 * np.pi * ot.f1 / fs
    w2 = p.tune * 2 * np.pi * ot.f2 / fs
    tone_f1 = max(abs(p.tone.f1 * p.tune * 2 * np.pi / fs), 0.001)
    start = math.radians(p.tone.phase)
    t1 = np.arange(1, n + 1, dtype=np.float64)
    # tracking: the overtone runs at a fixed ratio to the tone's (falling) phase
    if ot.track1 and p.tone.on:
        w1 /= tone_f1
        phase1 = tone_phase * w1
    else:
        phase1 = start + w1 * t1
    if ot.track2 and p.tone.on:
        w2 /= tone_f1
        phase2 = tone_phase * w2
    else:
        phase2 = start + w2 * t1
    balance = 0.01 * ot.param
    drive = ot.param**3 / 125000.0
    if ot.method == 0:  # mix
        return level * (
            (1 - balance) * env1 * _waveform(phase1, ot.wave1)
            + balance * env2 * _waveform(phase2, ot.wave2)
        )
    if ot.method == 1:  # FM: oscillator 2 modulates the phase of oscillator 1
        mod = drive * env2 * _waveform(phase2, ot.wave2)
        return level * env1 * _waveform(phase1 + mod, ot.wave1)
    if ot.method == 2:  # ring modulation, depth set by param
        ring = (1 - drive / 8) + (drive / 8) * env2 * _waveform(phase2, ot.wave2)
        return level * env1 * _waveform(phase1, ot.wave1) * ring
    if ot.method == 3:
        return _cymbal(p, n, w1, w2, level * env1, env2)
    return np.zeros(n)


def _cymbal(
    p: Preset, n: int, w1: float, w2: float, amp: np.ndarray, env2: np.ndarray
) -> np.ndarray:
    """Six pulse oscillators between the periods of F1 and F2, through a swept band-pass."""
    period1, period2 = 2 * np.pi / w1, 2 * np.pi / w2
    t = np.arange(n + 1, dtype=np.float64)
    pulse = np.zeros(n, dtype=bool)
    for j in range(6):
        period = period1 + (period2 - period1) * 0.2 * j
        if period < 1.0:
            pulse[:] = True
            continue
        # an oscillator wraps once every `period` samples, first at sample 0
        count = np.ceil(t / period)
        pulse |= np.diff(count) > 0
    x = np.where(pulse, amp, 0.0)
    tightness = 0.28 + (1 - 0.01 * p.overtones.param) ** 2
    q = tightness * tightness
    f = _per_block(env2) * (1.8 - 0.7 * q) * 0.92
    coefs = np.stack([f, np.full_like(f, q)], axis=1)
    return _CymbalBandPass().run(x, coefs)


def _main_filter(p: Preset, x: np.ndarray, ts: float) -> np.ndarray:
    cutoff = _per_block(p.general.filter_env.curve(len(x), ts))
    pole = np.where(cutoff > 0.2, 1.001 - 10.0 ** (cutoff - 1.0), 0.999 - 0.7824 * cutoff)
    pole = np.minimum(pole, 0.999)  # a negative level would make it unstable
    res = math.sqrt(max(0.0101 * p.general.resonance, 0.0))
    feedback = res * (1.0 + 1.0 / pole)
    return _ResonantLowPass().run(x, np.stack([pole, feedback], axis=1))


def _distort(p: Preset, x: np.ndarray, gain: float) -> tuple[np.ndarray, float]:
    """Bit and rate reduction; returns the sound and the level it clips at."""
    d = p.distortion
    parts = [(p.tone.on, p.tone.level), (p.noise.on, p.noise.level)]
    parts += [(p.overtones.on, p.overtones.level)]
    parts += [(p.band1.on, p.band1.level), (p.band2.on, p.band2.level)]
    loudest = max((float(level * level) for on, level in parts if on), default=0.0)
    loudest = float((int(loudest) + 32768) % 65536 - 32768)  # the engine keeps it in a short
    clip = min(_CLIP, float(np.trunc(gain * loudest)))
    step = 2.0 ** (2 * d.bits)
    x = gain * 10 ** (0.05 * d.clipping) * step * np.trunc(x / step)
    hold = {4: 8, 5: 10, 6: 20}.get(d.rate, 1 + d.rate)
    if hold > 1:
        whole = len(x) - len(x) % hold
        means = x[:whole].reshape(-1, hold).mean(axis=1)
        x[:whole] = np.repeat(means, hold)
        if whole < len(x):
            x[whole:] = x[whole:].mean()
    return x, clip


def _seed(preset: Preset) -> int:
    return zlib.crc32(preset.name.encode("utf-8"))


def render(
    preset: Preset,
    sample_rate: int = 44100,
    max_seconds: float = 4.0,
    *,
    seed: int | None = None,
    engine_rate: int = ENGINE_RATE,
) -> np.ndarray:
    """Render a preset to float32 mono (1.0 = the engine's 16-bit full scale).

    The sound lasts until its envelopes end (plus the engine's block padding), at most
    ``max_seconds``. ``seed`` fixes the noise (default: from the preset's name).

    ``engine_rate`` is the rate the engine runs at (then resampled to ``sample_rate``). The
    presets were made at 44.1 kHz; at another rate envelope times and pitches stay right but
    the per-sample filters (noise slope, resonant filter, cymbal band-pass), the noise bands'
    hold and the pitch droop change their sound, as in LMMS, which renders a ``.ds`` at its
    processing rate (its ``lmms render`` runs the engine at 88.2 kHz: ``engine_rate=88200``
    with ``sample_rate=88200`` and every second sample kept reproduces it).
    """
    if sample_rate <= 0 or max_seconds <= 0 or engine_rate <= 0:
        raise ValueError("sample_rate, engine_rate and max_seconds must be positive")
    fs = float(engine_rate)
    ts = preset.stretch * fs / ENGINE_RATE
    n = min(preset.length(ts), max(1, round(max_seconds * fs)))
    rng = np.random.default_rng(_seed(preset) if seed is None else seed)
    tone, tone_phase = _tone(preset, n, fs, ts)
    mix = tone
    if preset.noise.on:
        mix = mix + _noise(preset, n, rng, ts)
    for band in (preset.band1, preset.band2):
        if band.on:
            mix = mix + _band(preset, band, n, rng, fs, ts)
    over = _overtones(preset, n, tone_phase, fs, ts) if preset.overtones.on else np.zeros(n)
    mode = 2 * preset.general.filter or preset.overtones.filter
    highpass = float(preset.general.highpass)
    if mode == 1:  # filter the overtones only
        mix = mix + _main_filter(preset, over, ts) - highpass * over
    elif mode == 2:  # filter everything
        both = mix + over
        mix = _main_filter(preset, both, ts) - highpass * both
    else:
        mix = mix + over
    gain = 10 ** (0.05 * preset.general.level)
    if preset.distortion.on:
        mix, clip = _distort(preset, mix, gain)
    else:
        mix, clip = mix * gain, _CLIP
    out = np.clip(mix, -clip, clip) / _FULL_SCALE
    nonzero = np.flatnonzero(out)
    out = out[: nonzero[-1] + 1] if len(nonzero) else out[:0]
    if sample_rate != engine_rate and len(out):
        g = math.gcd(int(sample_rate), int(engine_rate))
        out = resample_poly(out, int(sample_rate) // g, int(engine_rate) // g)
        out = out[: max(1, round(max_seconds * sample_rate))]
    return out.astype(np.float32)


# ------------------------------------------------------------------------------- the importer


# LMMS, whose presets these are, plays a .ds with the engine at twice 44.1 kHz and keeps every
# second sample (bench/drumsynth_vs_lmms.py); the bank's sounds are rendered the same way, so
# they are what an LMMS user hears.
LMMS_OVERSAMPLING = 2


def _loader(path: Path, preset: Preset, sample_rate: int) -> Callable[[], tuple[np.ndarray, int]]:
    def load() -> tuple[np.ndarray, int]:
        k = LMMS_OVERSAMPLING
        audio = render(preset, k * sample_rate, engine_rate=k * ENGINE_RATE)[::k]
        if not np.all(np.isfinite(audio)):
            raise DrumSynthError(f"{path}: renders non-finite samples")
        if len(audio) == 0 or float(np.max(np.abs(audio))) == 0.0:
            raise DrumSynthError(f"{path}: renders silence")
        return audio[:, None], sample_rate

    return load


def iter_drumsynth(
    root: str | Path,
    *,
    licence: str,
    package: str = "",
    folders: Iterable[str] | None = None,
    sample_rate: int = 44100,
) -> Iterator[SoundSource]:
    """One :class:`SoundSource` per ``<root>/<folder>/*.ds``, sorted by folder and file.

    ``root`` is the ``drumsynth`` folder (``usr/share/lmms/samples/drumsynth``); ``folders``
    picks some of its subfolders (default: all). Every preset is yielded, drum or not: the
    labelling rules decide. A file that does not parse, or has no component on, is skipped with
    a warning. Rendering happens in ``load``; a render that is silent or not finite raises
    :class:`DrumSynthError` there (the bank counts it as unreadable).
    """
    root = Path(root)
    if not root.is_dir():
        raise DrumSynthError(f"{root}: not a folder")
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if folders is None else folders
    for folder in names:
        files = sorted((root / folder).glob("*.ds"), key=lambda p: p.name)
        if not files:
            log.warning("DrumSynth: no .ds presets in %s", root / folder)
        for path in files:
            try:
                preset = read_preset(path)
            except DrumSynthError as exc:
                log.warning("skip %s", exc)
                continue
            if not preset.audible:
                log.warning("skip %s: no component is on", path)
                continue
            yield SoundSource(
                kit=f"LMMS DrumSynth {folder}",
                instrument=preset.name,
                layer=0,
                source=path.relative_to(root).as_posix(),
                load=_loader(path, preset, sample_rate),
                file_name=path.name,
                licence=licence,
                package=package,
            )
