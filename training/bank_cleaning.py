"""Cleaning one drum sound into a fixed-length training example, skipping what cannot be used.

Mono, resampled, leading silence trimmed, tail cut with a short fade, fixed length,
peak-normalised with the gain kept; :func:`content_hash` names the result so that copies of one
sample in other containers are found.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

log = logging.getLogger(__name__)

# What reading a broken or unsupported sound file raises (soundfile, the SF2 and GUS readers).
UNREADABLE = (OSError, RuntimeError, ValueError, EOFError)


class SkipSound(Exception):
    """One sound cannot be used; the message says why in a few words."""


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


def one_line(exc: BaseException) -> str:
    """An error's message on one line, for a log line per skipped sound."""
    return " ".join(str(exc).split()) or type(exc).__name__


def with_progress_bar(
    items: Iterable, enabled: bool, desc: str, total: int | None = None
) -> Iterable:
    """``items``, behind a progress bar in the terminal when ``enabled``."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, unit="sound", leave=False)


def count_skip(skipped: Counter[str], what: str, reason: str) -> None:
    """Log why ``what`` is skipped and count the reason (its first words) in ``skipped``."""
    log.warning("skip %s: %s", what, reason)
    skipped[reason.split(" (")[0].split(":")[0]] += 1


def load_and_clean(
    load: Callable[[], tuple[np.ndarray, int]],
    settings: CleanSettings,
    skipped: Counter[str],
    what: str,
) -> tuple[np.ndarray, int, Cleaned] | None:
    """The audio ``load`` reads, its sample rate and its cleaned form; None when the sound
    cannot be used (the reason logged and counted by :func:`count_skip`)."""
    try:
        audio, rate = load()
        return audio, rate, clean(audio, rate, settings)
    except SkipSound as exc:
        reason = str(exc)
    except UNREADABLE as exc:
        reason = f"unreadable: {one_line(exc)}"
    count_skip(skipped, what, reason)
    return None
