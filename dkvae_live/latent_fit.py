"""A sound's latent fitted through the decoder: the encoder's latent, then a few steps that bring
the decoded sound closer to the sound itself.

On drum kits a model never saw, the encoder's latent decodes further from the sound than the
best latent the decoder can take (bench/latent_fit.py measures the gap); the encoder generalises
worse than the decoder. `fit_latent` closes most of the gap by the mel distance (issue 18's
measure 1, `dkvae_live.mel`) between the decoder's magnitudes and the sound's, at the sound's
class. onnxruntime gives no gradients, so each step's Jacobian of every band's difference in dB
is taken by forward differences, one decoder run of latent_size + 1 latents, and the step is
Levenberg-Marquardt's on those differences, each weighed by its inverse size so that their
squares stand for the distance's absolute values (iteratively reweighted least squares). It
reaches a closer latent in half the runs of plain gradient steps (bake-off round 10). Numpy only.
"""

from __future__ import annotations

import numpy as np

from . import contract, mel
from .model import Decoder
from .phase import stft

FIT_STEPS = 24  # chosen on the validation split against the time it takes (bake-off round 10)
DIFFERENCE = 0.01  # each forward difference's step along one latent dimension
WEIGHT_FLOOR_DB = 2.0  # a band's weight is 1 / its difference, but no more than 1 / this
DAMPING = 1.0  # the first step's damping, relative to the curvature each dimension shows
MAX_STEP = 1.0  # the longest step, in latent units: the Jacobian holds only near where it was taken
# a waveform decoder's sound is measured at this framing (a log-magnitude one at its own)
AUDIO_N_FFT, AUDIO_HOP = 2048, 256


def _framing(decoder: Decoder) -> tuple[int, int]:
    info = decoder.info
    if info.output_kind == contract.LOG_MAGNITUDE:
        return info.n_fft, info.hop_length
    return AUDIO_N_FFT, AUDIO_HOP


def _power(decoder: Decoder, z: np.ndarray, class_index: int, frames: np.ndarray) -> np.ndarray:
    """The decoder's power spectrogram [batch, frames, bins] for each latent of `z`, at the
    `frames` of a mask over them all."""
    info = decoder.info
    out = decoder.output(z, np.full(z.shape[0], class_index, np.int64))
    if info.output_kind == contract.LOG_MAGNITUDE:
        magnitude = np.maximum(np.exp(out[:, : frames.shape[0]][:, frames]) - info.log_offset, 0.0)
    else:
        magnitude = np.abs(stft(out, *_framing(decoder), frames.shape[0]))[:, frames]
    return np.square(magnitude)


def _reference(decoder: Decoder, audio: np.ndarray) -> mel.MelReference:
    info = decoder.info
    n_fft, hop = _framing(decoder)
    frames = 1 + info.num_samples // hop
    sound = np.asarray(audio, np.float32).reshape(1, -1)
    return mel.MelReference(
        np.square(np.abs(stft(sound, n_fft, hop, frames)[0])),
        mel.mel_filterbank(info.sample_rate, n_fft, mel.BANDS).astype(np.float32),
    )


def fit_distance(
    decoder: Decoder, audio: np.ndarray, class_index: int, latents: np.ndarray
) -> np.ndarray:
    """The distance `fit_latent` lessens (dB), from `audio` to the decoder's magnitudes at each
    of `latents` [n, latent_size]: [n]."""
    reference = _reference(decoder, audio)
    power = _power(decoder, np.asarray(latents, np.float32), class_index, reference.frames)
    return reference.distance_at(power)


def fit_latent(
    decoder: Decoder,
    audio: np.ndarray,
    class_index: int,
    start: np.ndarray,
    steps: int = FIT_STEPS,
) -> np.ndarray:
    """The latent [latent_size] whose decoded sound (at `class_index`) lies closest, by the mel
    distance, to `audio` [num_samples] (read as the encoder reads a file), of those tried in
    `steps` steps from `start` (the encoder's latent): never further than `start` itself."""
    info = decoder.info
    reference = _reference(decoder, audio)
    z = np.asarray(start, np.float32).reshape(info.latent_size).copy()
    if steps <= 0 or not reference.frames.any():
        return z

    def differences(latents: np.ndarray) -> np.ndarray:
        return reference.difference_at(_power(decoder, latents, class_index, reference.frames))

    nudges = (DIFFERENCE * np.eye(info.latent_size)).astype(np.float32)
    here = differences(z[None])[0]
    best = float(np.abs(here).mean())
    damping = DAMPING
    moved = True
    for _ in range(steps):
        if moved:  # a new point: its Jacobian and the step's equations
            jacobian = (differences(z + nudges) - here).T / DIFFERENCE  # [terms, latent_size]
            weighted = jacobian.T / np.maximum(np.abs(here), WEIGHT_FLOOR_DB)
            curvature = weighted @ jacobian
            slope = weighted @ here
            # a dimension the sound does not move has no curvature: a little keeps it still
            scale = np.diag(curvature) + 1e-6
        step = -np.linalg.solve(curvature + damping * np.diag(scale), slope)
        length = float(np.linalg.norm(step))
        if length > MAX_STEP:
            step *= MAX_STEP / length
        candidate = z + step.astype(np.float32)
        there = differences(candidate[None])[0]
        distance = float(np.abs(there).mean())
        moved = distance < best
        if moved:
            z, here, best = candidate, there, distance
            damping *= 0.5
        else:
            damping *= 4.0
    return z
