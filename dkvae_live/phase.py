"""Audio from STFT magnitudes: a phase that is quick to make and good to hear.

A log-magnitude decoder gives no phase. `phase_from_gradients` estimates one without iterating,
from how the log magnitude changes across time and frequency (the phase-gradient relations of a
Gaussian window, after Prusa, Balazs and Sondergaard 2017, integrated along time and, where a
sound starts, across frequency): the draft the renderer plays while a latent moves. `invert`
refines it with a few fast Griffin-Lim iterations (Perraudin, Balazs and Sondergaard 2013) for
the sound kept once the latent rests. Centred frames and a periodic Hann window throughout, as
the training's STFT has them. Numpy only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from . import mel

# gamma of a Gaussian window that matches a Hann window of length L is 0.25645 L^2 (Prusa et al.)
_HANN_GAMMA = 0.25645
_TINY = 1e-10
# a frame starts a sound where its energy is this much (dB) above the frame before
_ONSET_DB = 6.0
# fast Griffin-Lim's momentum (Perraudin et al. find 0.99 best)
_MOMENTUM = 0.99
# A decoder's magnitudes are smooth: the gradient phase then advances each bin of a noisy tail at
# its centre frequency, and the bins line up again every n_fft samples, a buzz at sample_rate /
# n_fft. `detuning` drifts them apart: each bin from DETUNE_FROM_HZ up by its own fixed amount
# within +-DETUNE_HZ (bench/draft_fidelity.py).
DETUNE_HZ = 8.0
DETUNE_FROM_HZ = 200.0


@lru_cache(maxsize=4)
def hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window, float32; one array per size, read-only."""
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    window.flags.writeable = False
    return window


@lru_cache(maxsize=8)
def _overlap_gain(n_fft: int, hop: int, n_frames: int) -> np.ndarray:
    """1 / the sum of the squared windows over each sample of `istft`'s output (before its
    centring cut), float32, read-only: the same for every call of one size (the sizes of a
    floored render vary with the sound: a miss costs n_fft / hop strided passes, not one per
    frame)."""
    square = hann(n_fft) ** 2
    norm = np.zeros(n_fft * 2 + hop * (n_frames - 1), np.float32)
    for start in range(0, n_fft, hop):
        width = min(hop, n_fft - start)
        span = norm[start : start + n_frames * hop].reshape(n_frames, hop)
        span[:, :width] += square[start : start + width]
    gain = (1.0 / np.maximum(norm, 1e-8)).astype(np.float32)
    gain.flags.writeable = False
    return gain


def stft(audio: np.ndarray, n_fft: int, hop: int, n_frames: int) -> np.ndarray:
    """[batch, samples] -> complex [batch, n_frames, n_fft/2+1], frame i centred on i * hop."""
    audio = np.asarray(audio, np.float32)
    padded = np.zeros((audio.shape[0], n_fft + hop * n_frames), np.float32)
    kept = audio[:, : padded.shape[1] - n_fft // 2]
    padded[:, n_fft // 2 : n_fft // 2 + kept.shape[1]] = kept
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop][:, :n_frames]
    # rfft(x) is n conj(ihfft(x)): numpy 2.4's float32 ihfft takes a fifth of the time of its
    # rfft in either precision (bench/phase.py)
    spec = np.fft.ihfft(np.multiply(frames, hann(n_fft)), axis=-1).astype(np.complex64, copy=False)
    np.conjugate(spec, out=spec)
    spec *= np.float32(n_fft)
    return spec


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """The inverse of `stft` (least squares, window-square normalised): float32 [batch, length]."""
    frames = np.fft.irfft(spec, n=n_fft, axis=-1).astype(np.float32, copy=False)
    frames *= hann(n_fft)
    batch, n_frames, _ = frames.shape
    total = n_fft + hop * (n_frames - 1)
    out = np.zeros((batch, total + n_fft), np.float32)
    # overlap-add in n_fft/hop strided passes, not one per frame
    for start in range(0, n_fft, hop):
        piece = frames[:, :, start : start + hop]
        span = out[:, start : start + n_frames * hop].reshape(batch, n_frames, hop)
        span[:, :, : piece.shape[2]] += piece
    kept = slice(n_fft // 2, n_fft // 2 + length)
    result = np.zeros((batch, length), np.float32)
    made = out[:, kept]
    np.multiply(made, _overlap_gain(n_fft, hop, n_frames)[kept], out=result[:, : made.shape[1]])
    return result


def detuning(n_fft: int, hop: int, sample_rate: int) -> np.ndarray:
    """Radians per hop added to each bin's phase advance (DETUNE_HZ): the same every call."""
    hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    spread = np.random.default_rng(0).uniform(-1.0, 1.0, hz.shape[0]) * (hz >= DETUNE_FROM_HZ)
    return (spread * 2 * np.pi * DETUNE_HZ * hop / sample_rate).astype(np.float32)


def phase_from_gradients(
    magnitude: np.ndarray, n_fft: int, hop: int, detune: np.ndarray | None = None
) -> np.ndarray:
    """A phase for `magnitude` [batch, frames, bins] without iterating: unit complex, same shape.

    The time derivative of the phase of each bin is its centre frequency plus a term from the
    log magnitude's slope across frequency (plus `detune`, radians per hop per bin: `detuning`);
    its frequency derivative comes from the log magnitude's slope across time. Each bin's phase
    is integrated along time; at the first frame and wherever a sound starts (an onset) a
    frame's phase is integrated across frequency instead, from its loudest bin, so the partials
    of a hit line up as an impulse's do.
    """
    log_mag = np.log(np.maximum(magnitude, _TINY), dtype=np.float32)
    batch, n_frames, n_bins = log_mag.shape
    gamma = _HANN_GAMMA * n_fft * n_fft
    bins = np.arange(n_bins, dtype=np.float32)
    # radians per hop, and per bin, of a window centred on its frame; float32 throughout, where
    # numpy's sin and cos are vectorised (thirty times faster than in float64)
    # the mean of two neighbouring frames' time derivatives, wrapped, summed along time
    slope = _slope(log_mag, -1)
    step = slope[:, 1:] + slope[:, :-1]
    step *= np.float32(hop * n_fft / gamma / 2)
    step += np.float32(2 * np.pi * hop / n_fft) * bins
    if detune is not None:
        step += detune
    # wrapped to [0, 2 pi) by floor: numpy's float32 mod is twenty times slower
    step -= np.float32(2 * np.pi) * np.floor(step * np.float32(1 / (2 * np.pi)))
    # summed frame by frame: numpy's cumsum along a middle axis takes three times as long
    walked = np.zeros_like(log_mag)
    for frame in range(1, n_frames):
        np.add(walked[:, frame - 1], step[:, frame - 1], out=walked[:, frame])
    # our frames are read from their first sample, half a window before the centre: (-1)^bin
    offset = np.where(bins % 2 == 1, np.float32(np.pi), np.float32(0.0))
    power = np.square(magnitude, dtype=np.float32).sum(axis=-1)
    rise = 10 * np.log10(np.maximum(power[:, 1:], _TINY) / np.maximum(power[:, :-1], _TINY))
    phase = walked
    for row in range(batch):
        starts = [0, *(np.flatnonzero(rise[row] > _ONSET_DB) + 1).tolist(), n_frames]
        for start, end in itertools.pairwise(starts):
            # the onset frame's phase across frequency, zero at its loudest bin (trapezoid
            # rule over its frequency derivative, from the log magnitude's slope in time)
            f_grad = np.float32(-gamma / (hop * n_fft)) * _time_slope(log_mag[row], start)
            across = np.zeros(n_bins, np.float32)
            np.cumsum((f_grad[1:] + f_grad[:-1]) / 2, out=across[1:])
            across += offset - across[np.argmax(log_mag[row, start])] - walked[row, start]
            phase[row, start:end] += across
    out = np.empty(phase.shape, np.complex64)
    np.cos(phase, out=out.real)  # straight into the parts: no temporaries to copy
    np.sin(phase, out=out.imag)
    return out


def _slope(x: np.ndarray, axis: int) -> np.ndarray:
    """Centred differences along `axis` (one-sided at the ends); zero along a single frame."""
    return np.gradient(x, axis=axis) if x.shape[axis] > 1 else np.zeros_like(x)


def _time_slope(log_mag: np.ndarray, frame: int) -> np.ndarray:
    """`_slope` along time [frames, bins] at one frame only."""
    n_frames = log_mag.shape[0]
    if n_frames == 1:
        return np.zeros_like(log_mag[0])
    before, after = max(frame - 1, 0), min(frame + 1, n_frames - 1)
    return (log_mag[after] - log_mag[before]) / np.float32(after - before)


def audible_frames(magnitude: np.ndarray, n_fft: int, hop: int, floor: float) -> int:
    """How many of `magnitude`'s first frames [batch, frames, bins] make every sample of the
    inverse (any phase) that can reach `floor`: after the last such sample only frames follow
    whose samples all stay under it.

    A frame's samples are at most 2 sum|X| / n_fft; the overlap-add of Hann-windowed frames
    at a hop of n_fft/3 or finer makes a sample at most 4/3 of the largest frame over it (the
    sum of the windows over the sum of their squares). The frames that overlap the last loud
    one's samples are kept too, so those samples are exact."""
    n_frames = magnitude.shape[1]
    if floor <= 0.0 or n_fft < 3 * hop:
        return n_frames
    bound = magnitude.sum(axis=-1).max(axis=0) * np.float32(2 / n_fft * 4 / 3)
    loud = np.flatnonzero(bound >= floor)
    last = int(loud[-1]) if loud.size else 0
    return min(n_frames, last + n_fft // hop)


def spectrum_distance(
    magnitude: np.ndarray, audio: np.ndarray, n_fft: int, hop: int, sample_rate: int
) -> np.ndarray:
    """Per sound, issue 18's mel distance (dB) from its magnitudes [batch, frames, bins] to
    those of its audio's own STFT [batch, samples]: what its phase costs it, and no more."""
    filterbank = mel.mel_filterbank(sample_rate, n_fft, mel.BANDS).astype(np.float32)
    own = np.abs(stft(audio, n_fft, hop, magnitude.shape[1]))
    return np.array(
        [
            mel.MelReference(np.square(target), filterbank).distance(np.square(made)[None])[0]
            for target, made in zip(magnitude, own, strict=True)
        ]
    )


def phase_of(audio: np.ndarray, n_fft: int, hop: int, n_frames: int) -> np.ndarray:
    """The phase of `audio` [batch, samples] as unit complex [batch, n_frames, bins]: where
    `invert` can `start` a related sound from."""
    spec = stft(audio, n_fft, hop, n_frames)
    return spec / np.maximum(np.abs(spec), np.float32(_TINY))


def invert(
    magnitude: np.ndarray,
    n_fft: int,
    hop: int,
    length: int,
    iterations: int = 0,
    floor: float = 0.0,
    detune: np.ndarray | None = None,
    start: np.ndarray | None = None,
    between: Callable[[], None] | None = None,
) -> np.ndarray:
    """Audio float32 [batch, length] from `magnitude` [batch, frames, bins]: the gradient phase,
    then `iterations` of fast Griffin-Lim, with `between()` called before each (the render
    worker serves a changed pad's first sound there: an iteration is a millisecond or two).

    With a `floor`, the frames after the last that can sound above it (`audible_frames`) are
    not inverted and the audio is silent there: a drum's magnitudes are mostly tail, and the
    work is in proportion to the frames inverted. `detune`: see `phase_from_gradients`.
    `start`: a phase to begin from instead of the gradient phase (`phase_of` a sound close to
    this one, such as another velocity layer of the same pad), unit complex [1 or batch,
    frames, bins]."""
    n_frames = audible_frames(magnitude, n_fft, hop, floor)
    if n_frames < magnitude.shape[1]:
        # the last sample the kept frames make in full: half a window after the last loud one
        kept = min(length, (n_frames - n_fft // hop) * hop + n_fft // 2)
        audio = np.zeros((magnitude.shape[0], length), np.float32)
        audio[:, :kept] = invert(
            magnitude[:, :n_frames],
            n_fft,
            hop,
            kept,
            iterations,
            0.0,
            detune,
            None if start is None else start[:, :n_frames],
            between,
        )
        return audio
    if start is None:
        start = phase_from_gradients(magnitude, n_fft, hop, detune)
    spec = magnitude * start
    scale = np.empty(spec.shape, np.float32)
    previous = None
    for _ in range(iterations):
        if between is not None:
            between()
        projected = stft(istft(spec, n_fft, hop, length), n_fft, hop, n_frames)
        # in place, into buffers kept across iterations, and the magnitude over |x| as one
        # real array: a complex division and fresh temporaries cost more than the transforms
        if previous is None:
            # the momentum extrapolates from the previous projection; the gradient phase's
            # spectrum is none (not consistent), and extrapolating from it undid the first step
            np.copyto(spec, projected)
        else:
            np.subtract(projected, previous, out=spec)
            spec *= np.float32(_MOMENTUM)
            spec += projected
        previous = projected
        np.abs(spec, out=scale)
        np.maximum(scale, np.float32(_TINY), out=scale)
        np.divide(magnitude, scale, out=scale)
        spec *= scale
    return istft(spec, n_fft, hop, length)
