"""Issue 18's mel distance (its measure 1) on power spectrograms: how far apart two sounds are as
an ear resolves them. The training's yardstick reports it on sounds (`dkvae_training.yardstick`);
the live package fits latents by it (`dkvae_live.latent_fit`). Numpy only.
"""

from __future__ import annotations

import math

import numpy as np

BANDS = 96
FMIN = 20.0
FLOOR_DB = 80.0  # both spectrograms floored this far under the reference's peak band power
FRAME_RANGE_DB = 60.0  # only frames within this of the reference's loudest frame count

# The Slaney mel scale (linear to 1 kHz, logarithmic above), as librosa's mel spectrograms use it:
# with its area-normalised triangles it reproduces issue 18's oracle figures closest.
_LINEAR_HZ = 200.0 / 3.0  # Hz per mel below 1 kHz
_BREAK_HZ = 1000.0
_BREAK = _BREAK_HZ / _LINEAR_HZ  # 15 mel
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """The Slaney mel scale."""
    f = np.asarray(f, np.float64)
    log = _BREAK + np.log(np.maximum(f, 1e-9) / _BREAK_HZ) / _LOG_STEP
    return np.where(f >= _BREAK_HZ, log, f / _LINEAR_HZ)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    m = np.asarray(m, np.float64)
    log = _BREAK_HZ * np.exp((m - _BREAK) * _LOG_STEP)
    return np.where(m >= _BREAK, log, m * _LINEAR_HZ)


def mel_filterbank(
    sample_rate: int, n_fft: int, bands: int, fmin: float = FMIN, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters ``[n_fft/2 + 1, bands]``, edges equally spaced in mel from ``fmin``
    to ``fmax`` (default Nyquist), each triangle's area normalised (Slaney) so that a band sums the
    power density of its width. ValueError if a band would catch no bin (an FFT too short for that
    many bands): an empty band is floored in both spectrograms and pulls every distance to 0."""
    fmax = sample_rate / 2.0 if fmax is None else fmax
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), bands + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)[:, None]
    lower, centre, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None) * (2.0 / (upper - lower))
    if np.any(weights.sum(axis=0) <= 0.0):
        raise ValueError(f"{bands} mel bands from {fmin} Hz need a longer FFT than {n_fft}")
    return weights


class MelReference:
    """One reference sound's power spectrogram ``[frames, bins]`` through `filterbank`, kept
    for measuring many others against it (`distance`)."""

    def __init__(
        self,
        power: np.ndarray,
        filterbank: np.ndarray,
        floor_db: float = FLOOR_DB,
        frame_range_db: float = FRAME_RANGE_DB,
    ) -> None:
        self.filterbank = filterbank
        self.mel = power @ filterbank
        floor = float(np.max(self.mel)) * 10.0 ** (-floor_db / 10.0)
        self.floor = max(floor, 1e-30)  # a silent reference: every band at the same floor
        self.mel_db = 10.0 * np.log10(np.maximum(self.mel, self.floor))
        frame_power = power.sum(axis=-1)
        self.frames = frame_power >= np.max(frame_power) * 10.0 ** (-frame_range_db / 10.0)

    def distance(self, power: np.ndarray) -> np.ndarray:
        """The mean absolute difference (dB) over the reference's frames that count and every
        band, from each of `power` [n, frames, bins] (the reference's framing) to it: [n]."""
        return self.distance_at(power[:, self.frames])

    def distance_at(self, power: np.ndarray) -> np.ndarray:
        """`distance` from power already cut to the frames that count (`frames`, a mask over
        all of them): for a caller that makes only those."""
        diff = np.abs(self.difference_at(power))
        return diff.mean(axis=1) if diff.size else np.zeros(power.shape[0])

    def difference_at(self, power: np.ndarray) -> np.ndarray:
        """Each band's difference in dB from the reference, [n, frames x bands], of power
        already cut to the frames that count: the terms whose absolute mean is the distance."""
        mel = power @ self.filterbank
        other_db = 10.0 * np.log10(np.maximum(mel, self.floor))
        return (other_db - self.mel_db[self.frames]).reshape(power.shape[0], -1)
