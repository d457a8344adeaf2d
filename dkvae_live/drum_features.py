"""What a drum sound is like, as numbers: the features that issue 18's yardstick
(training/yardstick.py) and a model's class guess (dkvae_live/class_guess.py) classify by.

Every sound is first read as the encoder reads a file (:func:`prepare`: started where it first
passes 1 % of its peak, peak-normalised), so a gain or a leading silence cannot change its
features; a silent sound is marked so and gets no class. The features (:func:`feature_names`):
log-mel band means and deviations, the attack frames, four segments' band levels, MFCCs, a
log-RMS envelope over growing windows, decay times, centroid, spread, roll-off, the strongest
low partial and how far it stands out, and per segment centroid, flatness and zero-crossing
rate; all level-free (dB relative to the sound's own peak, times, frequencies in log Hz).
Numpy only: the daemon computes them too. Change them and FEATURES names a new version, since a
model's class guess was fitted on the old.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .mel import FMIN, mel_filterbank

FEATURES = "dkvae-drum-features-1"  # the version a model's class guess names

# the encoder's reading of a sound (`prepare`, which dkvae_live.model.read_sound reads files
# through): start where it first passes 1 % of its peak; a peak under 1e-4 is silence
TRIM_FRACTION = 0.01
SILENT_PEAK = 1e-4

FEATURE_N_FFT = 1024
FEATURE_HOP = 256
FEATURE_BANDS = 32
ATTACK_FRAMES = 3  # frames 0-2 (centred, hop 5.8 ms): the first ~15 ms
# growing windows: a drum's envelope changes fast at first and slowly later
ENVELOPE_EDGES_MS = (0.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1000.0)
SEGMENTS_MS = ((0.0, 30.0), (30.0, 100.0), (100.0, 300.0), (300.0, 1000.0))
DECAY_LEVELS_DB = (-10.0, -20.0, -30.0, -40.0, -60.0)
MFCCS = 13
_BATCH = 32
_TINY = 1e-12


def hann(n: int) -> np.ndarray:
    """The periodic Hann window (the one ``tf.signal.hann_window`` and the daemon use)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def power_spectrogram(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred (zero-padded by ``n_fft / 2``) Hann STFT power ``[n, frames, n_fft/2 + 1]``,
    framed as the training losses frame it; ``frames = 1 + samples // hop``."""
    x = np.atleast_2d(np.asarray(audio, np.float64))
    pad = n_fft // 2
    x = np.pad(x, ((0, 0), (pad, pad)))
    frames = 1 + (x.shape[1] - n_fft) // hop
    view = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=1)[:, ::hop][:, :frames]
    spec = np.fft.rfft(view * hann(n_fft), axis=-1)
    return spec.real**2 + spec.imag**2


def prepare(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sounds as the encoder reads a file: started where they first pass 1 % of their peak,
    peak-normalised, same length (zero-padded). Returns ``(audio float32 [n, samples],
    silent bool [n])``; a silent row (peak under 1e-4) stays all zeros."""
    x = np.atleast_2d(np.asarray(audio, np.float32))
    out = np.zeros_like(x)
    silent = np.zeros(x.shape[0], bool)
    for row, (src, dst) in enumerate(zip(x, out, strict=True)):
        peak = float(np.max(np.abs(src))) if src.size else 0.0
        if not np.isfinite(peak) or peak < SILENT_PEAK:
            silent[row] = True
            continue
        start = int(np.argmax(np.abs(src) > peak * TRIM_FRACTION))
        piece = src[start:] / peak
        dst[: piece.shape[0]] = piece
    return out, silent


def _db(x: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(x, _TINY))


def _dct_matrix(n: int, k: int) -> np.ndarray:
    """Orthonormal DCT-II, first ``k`` rows: the cepstrum of a log spectrum."""
    i = np.arange(n)
    m = np.cos(np.pi / n * (i[None, :] + 0.5) * np.arange(k)[:, None]) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def feature_names() -> list[str]:
    """The name of each column of :func:`features`, in order."""
    b = range(FEATURE_BANDS)
    names = [f"band_mean_{i}" for i in b] + [f"band_std_{i}" for i in b]
    names += [f"attack{f}_band_{i}" for f in range(ATTACK_FRAMES) for i in b]
    names += [f"segment{s}_band_{i}" for s in range(len(SEGMENTS_MS)) for i in b]
    names += [f"mfcc_{i}" for i in range(MFCCS)]
    names += [f"log_rms_{lo:g}_{hi:g}ms" for lo, hi in itertools.pairwise(ENVELOPE_EDGES_MS)]
    names += [f"decay_to_{-level:g}db" for level in DECAY_LEVELS_DB]
    names += ["centroid_mean", "centroid_std", "spread", "rolloff_85", "peak_frequency", "tonality"]
    for s in range(len(SEGMENTS_MS)):
        names += [f"segment{s}_centroid", f"segment{s}_flatness", f"segment{s}_zcr"]
    return names


def features(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The yardstick's features of each sound, after :func:`prepare`: ``(float32 [n, d],
    silent bool [n])``; columns named by :func:`feature_names`, all level-free (dB relative to the
    sound's own peak, times, frequencies in log Hz)."""
    prepared, silent = prepare(audio)
    fb = mel_filterbank(sample_rate, FEATURE_N_FFT, FEATURE_BANDS, fmin=FMIN)
    freqs = np.fft.rfftfreq(FEATURE_N_FFT, 1.0 / sample_rate)
    log_freqs = np.log(np.maximum(freqs, 10.0))
    dct = _dct_matrix(FEATURE_BANDS, MFCCS)
    samples = prepared.shape[1]
    frame_t = np.arange(1 + samples // FEATURE_HOP) * FEATURE_HOP / sample_rate
    segments = [(frame_t >= lo / 1000) & (frame_t < hi / 1000) for lo, hi in SEGMENTS_MS]
    env_edges = [min(samples, round(ms * sample_rate / 1000)) for ms in ENVELOPE_EDGES_MS]
    out = []
    for start in range(0, prepared.shape[0], _BATCH):
        x = prepared[start : start + _BATCH].astype(np.float64)
        power = power_spectrogram(x, FEATURE_N_FFT, FEATURE_HOP)  # [b, frames, bins]
        mel = power @ fb  # [b, frames, bands]
        peak_band = np.max(mel, axis=(1, 2), keepdims=True)
        mel_db = np.maximum(_db(mel / np.maximum(peak_band, _TINY)), -100.0)
        energy = power.sum(axis=2)  # [b, frames]
        energy_db = np.maximum(
            _db(energy / np.maximum(energy.max(axis=1, keepdims=True), _TINY)), -100.0
        )
        for j in range(x.shape[0]):
            f: list[np.ndarray | list[float]] = []
            active = energy_db[j] > -60.0  # the sound itself, not its silent tail
            if not np.any(active):
                active = np.ones_like(active)
            weights = energy[j, active] / max(float(energy[j, active].sum()), _TINY)
            band_mean = mel_db[j, active].mean(axis=0)
            f += [band_mean, mel_db[j, active].std(axis=0)]
            f += [mel_db[j, k] for k in range(ATTACK_FRAMES)]
            seg_power = [
                mel[j, sel].mean(axis=0) if np.any(sel) else np.zeros(FEATURE_BANDS)
                for sel in segments
            ]
            f += [
                np.maximum(_db(p / max(float(peak_band[j].squeeze()), _TINY)), -100.0)
                for p in seg_power
            ]
            f.append(dct @ band_mean)
            # log-RMS over growing windows, dB under the sound's peak (1.0 after prepare)
            f.append(
                [
                    max(10.0 * math.log10(max(float(np.mean(x[j, a:b] ** 2)), _TINY)), -100.0)
                    if b > a
                    else -100.0
                    for a, b in itertools.pairwise(env_edges)
                ]
            )
            # how long until the frame energy has fallen for good below each level
            decay = []
            for level in DECAY_LEVELS_DB:
                above = np.flatnonzero(energy_db[j] > level)
                decay.append(
                    math.log(frame_t[above[-1]] + 0.005) if above.size else math.log(0.005)
                )
            f.append(decay)
            p = power[j, active]  # [active frames, bins]
            frame_total = np.maximum(p.sum(axis=1), _TINY)
            centroids = (p @ log_freqs) / frame_total
            centroid_mean = float(weights @ centroids)
            centroid_std = float(np.sqrt(weights @ (centroids - centroid_mean) ** 2))
            spectrum = p.sum(axis=0)
            total = max(float(spectrum.sum()), _TINY)
            mean_lf = float(spectrum @ log_freqs) / total
            spread = math.sqrt(max(float(spectrum @ (log_freqs - mean_lf) ** 2) / total, 0.0))
            rolloff = float(
                log_freqs[
                    min(int(np.searchsorted(np.cumsum(spectrum) / total, 0.85)), len(freqs) - 1)
                ]
            )
            # the strongest partial and how much it stands out (a kick's or tom's body)
            low = (freqs >= 20.0) & (freqs <= 2000.0)
            peak_bin = int(np.argmax(np.where(low, spectrum, 0.0)))
            tonality = _db(spectrum[peak_bin] / max(float(np.median(spectrum[low])), _TINY))
            f.append(
                [
                    centroid_mean,
                    centroid_std,
                    spread,
                    rolloff,
                    float(log_freqs[peak_bin]),
                    float(tonality),
                ]
            )
            for (lo, hi), sel in zip(SEGMENTS_MS, segments, strict=True):
                seg = power[j, sel].sum(axis=0) if np.any(sel) else np.zeros(len(freqs))
                seg_total = max(float(seg.sum()), _TINY)
                seg_centroid = float(seg @ log_freqs) / seg_total
                flatness = float(
                    np.exp(np.mean(np.log(seg[1:] + _TINY))) / (np.mean(seg[1:]) + _TINY)
                )
                a, b = (
                    min(samples, round(lo * sample_rate / 1000)),
                    min(samples, round(hi * sample_rate / 1000)),
                )
                piece = x[j, a:b]
                zcr = (
                    float(np.mean(np.abs(np.diff(np.signbit(piece).astype(np.int8)))))
                    if b - a > 1
                    else 0.0
                )
                f.append([seg_centroid, 10.0 * math.log10(flatness + _TINY), zcr])
            out.append(np.concatenate([np.asarray(v, np.float64).ravel() for v in f]))
    feats = np.asarray(out, np.float32).reshape(prepared.shape[0], -1)
    return feats, silent
