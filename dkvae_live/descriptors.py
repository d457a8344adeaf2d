"""Four descriptors a drummer names, measured on a sound: brightness, decay, pitch, punch.

The timbre axes (:mod:`dkvae_live.axes`) are fitted to move these, and their test measures them
on what the decoder plays. Each is on a scale where equal steps sound alike: octaves for
brightness and pitch, log2 seconds for decay, decibels for punch. Numpy only.
"""

from __future__ import annotations

import numpy as np

from .contract import AXIS_NAMES

ONSET_FRACTION = 0.05  # the sound starts where |x| first reaches this fraction of its peak
FRAME_SECONDS = 0.005  # energy envelope: frames of 5 ms
DECAY_DB = 40.0
MAX_DECAY_SECONDS = 30.0  # an extrapolated decay is at most this long
ATTACK_SECONDS = 0.020
BODY_SECONDS = (0.010, 0.250)  # the part of a kick or tom whose fundamental is its pitch
BODY_RANGE_HZ = (25.0, 600.0)
PEAK_RANGE_HZ = (20.0, 20000.0)
BODY_CLASSES = ("kick", "tom")  # pitch: fundamental of the body; others: spectral peak
TINY = 1e-12


def _onset(x: np.ndarray) -> int:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= TINY:
        return 0
    return int(np.flatnonzero(np.abs(x) >= peak * ONSET_FRACTION)[0])


def brightness(x: np.ndarray, rate: int) -> float:
    """Spectral centroid of the whole sound (power-weighted), in octaves above 1 Hz."""
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / rate)
    centroid = float(np.sum(freqs * power) / (np.sum(power) + TINY))
    return float(np.log2(max(centroid, 1.0)))


def decay(x: np.ndarray, rate: int) -> float:
    """Time for the energy envelope (5 ms frames) to fall 40 dB below its peak, in log2
    seconds. A sound that ends before it falls that far (a cymbal cut at one second) is
    extrapolated at the rate it was falling: the slope of its level in dB from the peak on."""
    frame = max(1, int(rate * FRAME_SECONDS))
    frames = x.shape[0] // frame
    energy = np.mean(x[: frames * frame].reshape(frames, frame) ** 2, axis=1)
    level = 10.0 * np.log10(energy + TINY)
    top = int(np.argmax(level))
    below = np.flatnonzero(level[top:] < level[top] - DECAY_DB)
    if below.size:
        seconds = max(int(below[0]), 1) * frame / rate
    else:
        t = np.arange(frames - top) * frame / rate
        slope = np.polyfit(t, level[top:], 1)[0] if t.size > 1 else 0.0
        seconds = DECAY_DB / -slope if slope < -DECAY_DB / MAX_DECAY_SECONDS else MAX_DECAY_SECONDS
    return float(np.log2(min(seconds, MAX_DECAY_SECONDS)))


def _peak_hz(x: np.ndarray, rate: int, low: float, high: float) -> float:
    """The centre of the loudest twelfth of an octave between ``low`` and ``high``: one
    semitone bins, so that a noisy spectrum's peak does not jump from one FFT bin to another."""
    size = max(1 << 15, 1 << int(np.ceil(np.log2(max(x.shape[0], 2)))))  # fine bins
    power = np.abs(np.fft.rfft(x * np.hanning(x.shape[0]), size)) ** 2
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    high = min(high, rate / 2)
    band = (freqs >= low) & (freqs <= high)
    semitones = np.floor(12.0 * np.log2(freqs[band] / low)).astype(np.int64)
    energy = np.bincount(semitones, weights=power[band])
    return float(low * 2.0 ** ((int(np.argmax(energy)) + 0.5) / 12.0))


def pitch(x: np.ndarray, rate: int, class_name: str) -> float:
    """Kicks and toms: the strongest frequency of the body (10-250 ms after the onset, 25-600
    Hz); any other class: the spectral peak of the whole sound. In octaves above 1 Hz."""
    start = _onset(x)
    if class_name in BODY_CLASSES:
        body = x[start + int(BODY_SECONDS[0] * rate) : start + int(BODY_SECONDS[1] * rate)]
        if body.shape[0] >= 64:
            return float(np.log2(_peak_hz(body, rate, *BODY_RANGE_HZ)))
    return float(np.log2(_peak_hz(x[start:], rate, *PEAK_RANGE_HZ)))


def punch(x: np.ndarray, rate: int) -> float:
    """Energy of the first 20 ms after the onset against the energy of the rest, in dB."""
    start = _onset(x)
    cut = start + int(ATTACK_SECONDS * rate)
    attack = float(np.sum(x[start:cut] ** 2))
    rest = float(np.sum(x[cut:] ** 2))
    return float(10.0 * np.log10((attack + TINY) / (rest + TINY)))


def measure(x: np.ndarray, rate: int, class_name: str) -> np.ndarray:
    """The four descriptors of one mono sound, in ``AXIS_NAMES`` order."""
    x = np.asarray(x, np.float64).reshape(-1)
    values = {
        "brightness": brightness(x, rate),
        "decay": decay(x, rate),
        "pitch": pitch(x, rate, class_name),
        "punch": punch(x, rate),
    }
    return np.array([values[name] for name in AXIS_NAMES])


def measure_all(audio: np.ndarray, rate: int, class_names: list[str]) -> np.ndarray:
    """[sounds, num_samples] with one class name per sound -> [sounds, 4]."""
    return np.array([measure(x, rate, c) for x, c in zip(audio, class_names, strict=True)])
