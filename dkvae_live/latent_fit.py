"""A sound's latent fitted through the decoder: the encoder's latent, then a few steps that bring
the decoded sound closer to the sound itself.

On drum kits a model never saw, the encoder's latent decodes further from the sound than the
best latent the decoder can take (bench/latent_fit.py measures the gap); the encoder generalises
worse than the decoder. `fit_latent` closes most of the gap with a few steps of Adam on the mel
distance (issue 18's measure 1, `dkvae_live.mel`) between the decoder's magnitudes and the
sound's, at the sound's class. onnxruntime gives no gradients, so each step's is a forward
difference: one decoder run of latent_size + 1 latents. Numpy only.
"""

from __future__ import annotations

import numpy as np

from . import contract, mel
from .model import Decoder
from .phase import stft

FIT_STEPS = 48  # chosen on the validation split against the time it takes (bake-off round 7)
FIT_RATE = 0.1  # Adam's step, in latent units
DIFFERENCE = 0.01  # each forward difference's step along one latent dimension
_BETA1, _BETA2, _EPSILON = 0.9, 0.999, 1e-8
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


def fit_latent(
    decoder: Decoder,
    audio: np.ndarray,
    class_index: int,
    start: np.ndarray,
    steps: int = FIT_STEPS,
) -> np.ndarray:
    """The latent [latent_size] whose decoded sound (at `class_index`) lies closest, by the mel
    distance, to `audio` [num_samples] (read as the encoder reads a file), of those met in
    `steps` steps from `start` (the encoder's latent): never further than `start` itself."""
    info = decoder.info
    n_fft, hop = _framing(decoder)
    frames = 1 + info.num_samples // hop
    sound = np.asarray(audio, np.float32).reshape(1, -1)
    reference = mel.MelReference(
        np.square(np.abs(stft(sound, n_fft, hop, frames)[0])),
        mel.mel_filterbank(info.sample_rate, n_fft, mel.BANDS).astype(np.float32),
    )
    heard = reference.frames
    size = info.latent_size
    nudges = np.vstack([np.zeros(size), DIFFERENCE * np.eye(size)]).astype(np.float32)
    z = np.asarray(start, np.float32).reshape(size).copy()
    best, best_z = np.inf, z.copy()
    moment, square = np.zeros(size, np.float32), np.zeros(size, np.float32)
    for step in range(1, steps + 1):
        distances = reference.distance_at(_power(decoder, z + nudges, class_index, heard))
        if distances[0] < best:
            best, best_z = float(distances[0]), z.copy()
        gradient = (distances[1:] - distances[0]) / DIFFERENCE
        moment = _BETA1 * moment + (1 - _BETA1) * gradient
        square = _BETA2 * square + (1 - _BETA2) * gradient**2
        unbiased = moment / (1 - _BETA1**step)
        z = z - FIT_RATE * unbiased / (np.sqrt(square / (1 - _BETA2**step)) + _EPSILON)
    last = reference.distance_at(_power(decoder, z[None], class_index, heard))[0]
    return z if last < best else best_z
