"""A one-shot does not swell back out of its own decay: the render worker's guard against a
spectrogram decoder's late bursts.

A drum one-shot, once past its loudest frame, decays; it may wobble (a snare's rattle, a
cymbal's shimmer), but it does not rise by more than RISE_DB over the quietest it has been
since. Generated sounds sometimes do: a decoder trained on log magnitudes leaves junk in frames
its targets had silent (a hi-hat quiet from 0.15 s, back at -48 dB at 0.93 s), which neither
the loss nor the mel distance weighs, as both count only the frames the target has loud. The
guard caps each frame after the loudest at RISE_DB over the quietest frame between them,
before the phase is made. `bench/decay_guard.py` measures how often it cuts real and
generated sounds.
"""

from __future__ import annotations

import numpy as np

RISE_DB = 20.0  # the most a frame may rise over the quietest frame since the loudest
_TINY = 1e-30


def frame_db(magnitude: np.ndarray) -> np.ndarray:
    """[batch, frames]: each frame's energy in dB."""
    return 10.0 * np.log10(np.einsum("bfk,bfk->bf", magnitude, magnitude) + _TINY)


def excess_db(energy: np.ndarray, rise_db: float = RISE_DB) -> np.ndarray:
    """[batch, frames]: how far each frame (`frame_db`) is over what the guard lets through;
    <= 0 where it passes."""
    loudest = np.argmax(energy, axis=1)
    after = np.arange(energy.shape[1])[None, :] >= loudest[:, None]
    quietest = np.minimum.accumulate(np.where(after, energy, np.inf), axis=1)
    return np.where(after, energy - (quietest + rise_db), 0.0)


def guard_decay(magnitude: np.ndarray, rise_db: float = RISE_DB) -> np.ndarray:
    """`magnitude` [batch, frames, bins] with every frame after each sound's loudest capped at
    `rise_db` over the quietest frame between them (in place; returned)."""
    over = excess_db(frame_db(magnitude), rise_db)
    rows, frames = np.nonzero(over > 0.0)
    if rows.size:
        gain = 10.0 ** (-over[rows, frames] / 20.0)
        magnitude[rows, frames] *= gain[:, None].astype(magnitude.dtype)
    return magnitude
