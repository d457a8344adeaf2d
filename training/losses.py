"""Losses and distances on waveforms (TensorFlow; for training and evaluation, never exported)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from .dsp import decimate


def stft_magnitude(audio: tf.Tensor, n_fft: int, hop_length: int) -> tf.Tensor:
    """Centred Hann STFT magnitude ``[batch, frames, n_fft/2+1]`` (same framing as ``dsp``)."""
    pad = n_fft // 2
    x = tf.pad(audio, [[0, 0], [pad, pad]])
    spec = tf.signal.stft(x, n_fft, hop_length, n_fft, window_fn=tf.signal.hann_window)
    return tf.abs(spec)


def multi_resolution_stft_loss(
    target: tf.Tensor, output: tf.Tensor, sizes: Sequence[int] = (2048, 1024, 512, 256, 128, 64)
) -> tf.Tensor:
    """Mean over resolutions of spectral convergence + L1 of log magnitudes; one value per example.

    Hops are a quarter of each size. Returns ``[batch]``.
    """
    total = tf.zeros(tf.shape(target)[:1], dtype=tf.float32)
    for n_fft in sizes:
        t = stft_magnitude(target, n_fft, n_fft // 4)
        o = stft_magnitude(output, n_fft, n_fft // 4)
        sc = tf.norm(t - o, axis=[1, 2]) / (tf.norm(t, axis=[1, 2]) + 1e-6)
        log_l1 = tf.reduce_mean(tf.abs(tf.math.log(t + 1e-5) - tf.math.log(o + 1e-5)), axis=[1, 2])
        total += sc + log_l1
    return total / float(len(sizes))


def log_spectrogram_mse(
    target: tf.Tensor,
    output: tf.Tensor,
    n_fft: int = 512,
    hop_length: int = 128,
    log_offset: float = 1e-6,
) -> tf.Tensor:
    """The seed's reconstruction term: MSE between ``log(|STFT| + offset)``; ``[batch]``."""
    t = tf.math.log(stft_magnitude(target, n_fft, hop_length) + log_offset)
    o = tf.math.log(stft_magnitude(output, n_fft, hop_length) + log_offset)
    return tf.reduce_mean(tf.square(t - o), axis=[1, 2])


def lowband_l1(target: tf.Tensor, output: tf.Tensor, factor: int = 32) -> tf.Tensor:
    """L1 between the low bands (below 0.9 x 44100 / (2 x factor) Hz) of two waveforms; ``[batch]``.

    A kick's body is a low sine whose phase is set by its onset, so a waveform loss on the low band
    is meaningful there and pushes the decoder to get the fundamental (not just its spectrum) right.
    """
    return tf.reduce_mean(tf.abs(decimate(target, factor) - decimate(output, factor)), axis=1)


def kl_divergence(z_mean: tf.Tensor, z_log_var: tf.Tensor, free_bits: float = 0.0) -> tf.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dimensions; ``[batch]``.

    With ``free_bits`` > 0 each dimension's KL is floored at that many nats (averaged over the
    batch first), so the warm-up cannot collapse a dimension that the decoder uses a little.
    """
    kl = -0.5 * (1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var))
    if free_bits > 0.0:
        per_dim = tf.maximum(tf.reduce_mean(kl, axis=0), free_bits)
        return tf.fill(tf.shape(kl)[:1], tf.reduce_sum(per_dim))
    return tf.reduce_sum(kl, axis=1)


def _power_db(power: tf.Tensor, floor_db: float) -> tf.Tensor:
    return tf.maximum(10.0 * tf.math.log(power + 1e-20) / tf.math.log(10.0), floor_db)


def _lsd(target_db: tf.Tensor, output_db: tf.Tensor) -> tf.Tensor:
    diff = target_db - output_db
    return tf.reduce_mean(tf.sqrt(tf.reduce_mean(tf.square(diff), axis=2)), axis=1)


def log_spectral_distance(
    target: tf.Tensor,
    output: tf.Tensor,
    n_fft: int = 2048,
    hop_length: int = 512,
    floor_db: float = -80.0,
) -> tf.Tensor:
    """Log-spectral distance in dB per example ``[batch]``.

    For each frame, the root mean square over frequency of the difference of the power spectra in
    dB (each floored at ``floor_db`` so digital silence does not dominate), averaged over frames.
    """

    def db(x: tf.Tensor) -> tf.Tensor:
        return _power_db(tf.square(stft_magnitude(x, n_fft, hop_length)), floor_db)

    return _lsd(db(target), db(output))


def smoothed_spectrum_lsd(
    target: tf.Tensor,
    frames: int = 3,
    bins: int = 3,
    n_fft: int = 2048,
    hop_length: int = 512,
    floor_db: float = -80.0,
) -> tf.Tensor:
    """The log-spectral distance from each sound to its own power spectrum averaged over
    ``frames`` x ``bins`` neighbours; ``[batch]``.

    A reference point, not a loss: it is what an oracle scores that knows every sound's spectrum
    up to that resolution but not its finer grain (the exact noise of a snare or a cymbal, which
    no decoder of a few latent numbers can know for a sound it never heard).
    """
    power = tf.square(stft_magnitude(target, n_fft, hop_length))
    smooth = tf.nn.avg_pool2d(power[..., None], (frames, bins), 1, "SAME")[..., 0]
    return _lsd(_power_db(power, floor_db), _power_db(smooth, floor_db))


MEL_MIN_HZ = 20.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Mel (the O'Shaughnessy scale) of a frequency in Hz."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, sample_rate: int, bands: int) -> np.ndarray:
    """Triangular mel filters ``[n_fft/2+1, bands]`` from ``MEL_MIN_HZ`` to Nyquist (a band
    narrower than a bin is widened to its nearest bins, so none is empty)."""
    bins = n_fft // 2 + 1
    hz = np.linspace(0.0, sample_rate / 2.0, bins)
    points = mel_to_hz(np.linspace(hz_to_mel(MEL_MIN_HZ), hz_to_mel(sample_rate / 2.0), bands + 2))
    width = sample_rate / n_fft
    out = np.zeros((bins, bands), np.float32)
    for b in range(bands):
        lo, mid, hi = points[b], points[b + 1], points[b + 2]
        lo, hi = min(lo, mid - width), max(hi, mid + width)
        rise = (hz - lo) / (mid - lo)
        fall = (hi - hz) / (hi - mid)
        out[:, b] = np.clip(np.minimum(rise, fall), 0.0, None)
    return out


def log_mel_l1(
    target: tf.Tensor,
    output: tf.Tensor,
    sizes: tuple[int, ...],
    sample_rate: int,
    bands: int,
) -> tf.Tensor:
    """Mean over ``sizes`` of the L1 between log mel magnitudes (hop a quarter of each size);
    ``[batch]``. The mel power is floored a little (1e-10) so silence does not dominate."""
    total = tf.zeros(tf.shape(target)[:1], dtype=tf.float32)
    for n_fft in sizes:
        fb = tf.constant(mel_filterbank(n_fft, sample_rate, min(bands, n_fft // 4)))
        t = tf.square(stft_magnitude(target, n_fft, n_fft // 4))
        o = tf.square(stft_magnitude(output, n_fft, n_fft // 4))
        lt = tf.math.log(tf.matmul(t, fb) + 1e-10)
        lo = tf.math.log(tf.matmul(o, fb) + 1e-10)
        total += 0.5 * tf.reduce_mean(tf.abs(lt - lo), axis=[1, 2])  # 0.5: magnitude, not power
    return total / float(max(1, len(sizes)))


def heard_mel_distance(
    target_magnitude: tf.Tensor,
    output_magnitude: tf.Tensor,
    filterbank: np.ndarray,
    floor_db: float,
    frame_range_db: float,
) -> tf.Tensor:
    """Issue 18's mel distance (dB) on STFT magnitudes ``[batch, frames, bins]``, differentiable:
    power through ``filterbank`` ``[bins, bands]``, both floored at the target's peak band power
    minus ``floor_db``, the mean absolute dB difference over the target's frames within
    ``frame_range_db`` of its loudest; ``[batch]``. What lies under the floor gives no gradient,
    so a decoder trained on it spends nothing on bins no one hears."""
    fb = tf.constant(filterbank, tf.float32)
    t_power, o_power = tf.square(target_magnitude), tf.square(output_magnitude)
    t_mel, o_mel = tf.matmul(t_power, fb), tf.matmul(o_power, fb)
    floor = tf.reduce_max(t_mel, axis=[1, 2], keepdims=True) * 10.0 ** (-floor_db / 10.0)
    floor = tf.maximum(floor, 1e-30)
    db = (10.0 / np.log(10.0)) * tf.abs(
        tf.math.log(tf.maximum(t_mel, floor)) - tf.math.log(tf.maximum(o_mel, floor))
    )
    frame_power = tf.reduce_sum(t_power, axis=2)
    loudest = tf.reduce_max(frame_power, axis=1, keepdims=True)
    heard = tf.cast(frame_power >= loudest * 10.0 ** (-frame_range_db / 10.0), tf.float32)
    per_frame = tf.reduce_mean(db, axis=2)
    return tf.reduce_sum(per_frame * heard, axis=1) / tf.maximum(tf.reduce_sum(heard, axis=1), 1.0)
