"""Fixed-weight signal-processing layers that export to plain ONNX convolutions.

``tf.signal.stft`` does not survive tf2onnx + onnxruntime (ComplexAbs / RFFT are refused), so the
graph that is exported computes its STFT and inverse STFT as convolutions with constant windowed
DFT bases. Training losses may use ``tf.signal`` freely; anything inside an exported model uses
these layers.

Conventions (shared by the encoder, the decoders and ``docs/model-contract.md``): periodic Hann
window, frames centred on ``t * hop_length`` (the signal is zero-padded by ``n_fft // 2`` on both
sides), ``1 + num_samples // hop_length`` frames.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def hann(n: int) -> np.ndarray:
    """The periodic Hann window of length ``n`` (as ``scipy.signal.get_window("hann", n)``)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float64)


def num_frames(num_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT of ``num_samples`` samples."""
    return 1 + num_samples // hop_length


def stft_basis(n_fft: int) -> np.ndarray:
    """Analysis kernel ``[n_fft, 1, 2 * bins]``: windowed cos (real) then -sin (imaginary)."""
    bins = n_fft // 2 + 1
    n = np.arange(n_fft)[:, None]
    k = np.arange(bins)[None, :]
    ang = 2.0 * np.pi * n * k / n_fft
    w = hann(n_fft)[:, None]
    basis = np.concatenate([w * np.cos(ang), -w * np.sin(ang)], axis=1)
    return basis[:, None, :].astype(np.float32)


def istft_basis(n_fft: int, hop_length: int) -> np.ndarray:
    """Synthesis kernel ``[n_fft, 1, 2 * bins]`` for ``conv_transpose`` (inverse real DFT).

    The synthesis window is Hann, and the kernel is divided by the constant overlap-add sum of the
    squared window, so ``istft(stft(x)) == x`` away from the edges when ``n_fft / hop_length`` is
    4 or more (and a flat gain of that sum otherwise).
    """
    bins = n_fft // 2 + 1
    n = np.arange(n_fft)[:, None]
    k = np.arange(bins)[None, :]
    ang = 2.0 * np.pi * n * k / n_fft
    c = np.full((1, bins), 2.0)
    c[0, 0] = 1.0
    if n_fft % 2 == 0:
        c[0, -1] = 1.0
    w = hann(n_fft)
    ola = float(np.sum(w**2) / hop_length)
    w = (w / ola)[:, None]
    basis = np.concatenate([w * c * np.cos(ang), -w * c * np.sin(ang)], axis=1) / n_fft
    return basis[:, None, :].astype(np.float32)


def lowpass_kernel(factor: int, taps_per_phase: int = 8) -> np.ndarray:
    """A Hann-windowed sinc low-pass for resampling by ``factor`` (cut-off 0.9 x the low Nyquist).

    Its DC gain is ``factor`` so that zero-stuffed upsampling keeps the level; divide by ``factor``
    to decimate.
    """
    length = 2 * factor * taps_per_phase
    t = (np.arange(length) - (length - 1) / 2.0) / factor
    cutoff = 0.9
    h = cutoff * np.sinc(cutoff * t) * np.hanning(length + 2)[1:-1]
    h = h / np.sum(h) * factor
    return h.astype(np.float32)


class ConvSTFT(keras.layers.Layer):
    """``[batch, samples]`` -> magnitude ``[batch, frames, n_fft/2+1]`` by a fixed Conv1D.

    With ``log_offset`` set the output is ``log(magnitude + log_offset)``.
    """

    def __init__(
        self, n_fft: int, hop_length: int, log_offset: float | None = None, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.log_offset = log_offset
        self._basis = stft_basis(n_fft)

    def call(self, audio):
        pad = self.n_fft // 2
        x = ops.pad(audio, [[0, 0], [pad, pad]])
        x = ops.expand_dims(x, -1)
        spec = ops.conv(
            x, ops.convert_to_tensor(self._basis), strides=self.hop_length, padding="valid"
        )
        bins = self.n_fft // 2 + 1
        re, im = spec[..., :bins], spec[..., bins:]
        mag = ops.sqrt(re * re + im * im + 1e-12)
        if self.log_offset is not None:
            return ops.log(mag + self.log_offset)
        return mag

    def get_config(self) -> dict:
        cfg = super().get_config()
        cfg.update(n_fft=self.n_fft, hop_length=self.hop_length, log_offset=self.log_offset)
        return cfg


class ConvISTFT(keras.layers.Layer):
    """``[batch, frames, 2 * bins]`` (real parts, then imaginary parts) -> ``[batch, num_samples]``.

    ``bins`` may be fewer than ``n_fft / 2 + 1``: the missing (highest) bins are taken as zero.

    One matrix product with the windowed inverse-DFT basis gives every frame's samples; the
    overlap-add is ``n_fft / hop_length`` shifted slices added together; the centring pad is then
    cut off. (onnxruntime runs this several times faster than a ``ConvTranspose`` or ``DFT``.)
    """

    def __init__(
        self,
        n_fft: int,
        hop_length: int,
        num_samples: int,
        bins: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if n_fft % hop_length:
            raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop_length ({hop_length})")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.num_samples = num_samples
        full = n_fft // 2 + 1
        self.bins = full if bins is None else bins
        basis = istft_basis(n_fft, hop_length)[:, 0, :].T  # [2 * full, n_fft]
        # only the lowest `bins` bins are given (the rest are zero): keep their rows
        self._basis = np.concatenate([basis[: self.bins], basis[full : full + self.bins]]).copy()

    def call(self, spec):
        hop = self.hop_length
        overlap = self.n_fft // hop
        frames = spec.shape[1]
        y = ops.matmul(spec, ops.convert_to_tensor(self._basis))  # [batch, frames, n_fft]
        parts = ops.reshape(y, (-1, frames, overlap, hop))
        total = None
        for k in range(overlap):
            shifted = ops.pad(parts[:, :, k, :], [[0, 0], [k, overlap - 1 - k], [0, 0]])
            total = shifted if total is None else total + shifted
        out = ops.reshape(total, (-1, (frames + overlap - 1) * hop))
        start = self.n_fft // 2
        return out[:, start : start + self.num_samples]

    def get_config(self) -> dict:
        cfg = super().get_config()
        cfg.update(
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            num_samples=self.num_samples,
            bins=self.bins,
        )
        return cfg


def polyphase_kernel(factor: int) -> tuple[np.ndarray, int]:
    """The upsampling filter as a Conv1D kernel ``[taps, 1, factor]`` and its left padding.

    ``conv1d(x, kernel)`` then a reshape equals zero-stuffing by ``factor`` and filtering with
    :func:`lowpass_kernel` (the filter's delay removed), with ``factor`` outputs per input sample.
    """
    h = lowpass_kernel(factor)
    length = h.shape[0]
    shift = (length - factor) // 2
    reach = length // factor + 2
    taps = 2 * reach + 1
    kernel = np.zeros((taps, 1, factor), np.float32)
    for q in range(taps):
        d = reach - q  # output block j takes input j - d
        for p in range(factor):
            idx = d * factor + p + shift
            if 0 <= idx < length:
                kernel[q, 0, p] = h[idx]
    return kernel, reach


class Upsample(keras.layers.Layer):
    """Band-limited upsampling of ``[batch, n]`` by an integer ``factor`` to ``num_samples``.

    Written as a polyphase Conv1D (one input channel, ``factor`` output channels) and a reshape.
    """

    def __init__(self, factor: int, num_samples: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.factor = factor
        self.num_samples = num_samples
        self._kernel, self._reach = polyphase_kernel(factor)

    def call(self, x):
        taps = self._kernel.shape[0]
        n = x.shape[1]
        padded = ops.pad(
            ops.expand_dims(x, -1), [[0, 0], [self._reach, taps - 1 - self._reach], [0, 0]]
        )
        y = ops.conv(padded, ops.convert_to_tensor(self._kernel), strides=1, padding="valid")
        return ops.reshape(y, (-1, n * self.factor))[:, : self.num_samples]

    def get_config(self) -> dict:
        cfg = super().get_config()
        cfg.update(factor=self.factor, num_samples=self.num_samples)
        return cfg


def decimate(audio, factor: int):
    """Low-pass and keep every ``factor``-th sample of ``[batch, samples]`` (training-side helper:
    losses compare the low band of two signals through the same filter)."""
    kernel = lowpass_kernel(factor) / factor
    length = kernel.shape[0]
    pad_left = (length - factor) // 2
    x = ops.pad(audio, [[0, 0], [pad_left, length - pad_left]])
    y = ops.conv(
        ops.expand_dims(x, -1),
        ops.convert_to_tensor(kernel[::-1, None, None].copy()),
        strides=factor,
        padding="valid",
    )
    return y[..., 0]
