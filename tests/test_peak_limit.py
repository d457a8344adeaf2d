"""The render worker's peak limiter (dkvae_live.peak_limit): the peaks over full scale come down,
the rest of the sound keeps its level."""

from __future__ import annotations

import numpy as np

from dkvae_live.peak_limit import HOLD_SECONDS, limit_peaks
from dkvae_live.renderer import prepare_sound

RATE = 48000


def decaying_noise(peak_at: int, peak: float) -> np.ndarray:
    """A second of noise decaying from 0.5, with one sample of `peak` at `peak_at`."""
    rng = np.random.default_rng(0)
    sound = (0.5 * rng.uniform(-1, 1, RATE) * np.exp(-np.arange(RATE) / 8000)).astype(np.float32)
    sound[peak_at] = peak
    return sound


def test_a_peak_comes_down_and_the_rest_keeps_its_level() -> None:
    sound = decaying_noise(1000, 2.5)
    limited = limit_peaks(sound, RATE)
    assert np.max(np.abs(limited)) <= 1.0
    assert limited[1000] > 0.99  # down to full scale, not under it
    reach = 2 * int(HOLD_SECONDS * RATE)  # the gain ramps down and back within this
    near = np.abs(np.arange(RATE) - 1000) <= reach
    np.testing.assert_array_equal(limited[~near], sound[~near])
    assert np.all(np.abs(limited[near]) <= np.abs(sound[near]))
    # the gain changes smoothly: no step bigger than a ramp's
    gain = limited[near] / np.where(sound[near] == 0, 1, sound[near])
    assert np.max(np.abs(np.diff(gain))) < 2.5 / reach


def test_peaks_at_the_very_start_and_everywhere_stay_under_full_scale() -> None:
    start = limit_peaks(decaying_noise(0, -3.0), RATE)
    assert np.max(np.abs(start)) <= 1.0 and start[0] == -1.0
    loud = np.random.default_rng(1).uniform(-4, 4, RATE).astype(np.float32)
    assert np.max(np.abs(limit_peaks(loud, RATE))) <= 1.0
    quiet = decaying_noise(1000, 0.9)
    assert limit_peaks(quiet, RATE) is quiet  # nothing over: the same array


def test_a_rendered_sound_with_a_peak_over_full_scale_is_not_turned_down_whole() -> None:
    sound = decaying_noise(1000, 2.5)
    prepared = prepare_sound(sound, RATE, RATE)
    assert prepared is not None and np.max(np.abs(prepared)) <= 1.0
    body = slice(2000, 20000)  # after the peak: the level it had (the DC blocker aside)
    level = np.sqrt(np.mean(prepared[body] ** 2)) / np.sqrt(np.mean(sound[body] ** 2))
    assert 0.98 < level < 1.02
