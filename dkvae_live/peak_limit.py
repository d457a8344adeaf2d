"""A look-ahead peak limiter for rendered sounds (numpy only): the peaks over full scale come
down, the rest of the sound keeps its level.

A spectrogram decoder's sound gets its phase from the render worker, and its waveform is often
peakier than the recording it learned from with the same spectrum: four in ten of the default
model's renders of real test sounds peak over 1.0. Turning such a sound down whole makes it
quieter than the sound it stands for (docs/bake-off.md, round 7). Here the gain dips only
around the samples over the ceiling, reaching the gain each needs and ramping back over
HOLD_SECONDS either side, as a hardware limiter with look-ahead does.
"""

from __future__ import annotations

import numpy as np

CEILING = 1.0
HOLD_SECONDS = 0.002  # the gain reaches a peak's over this long, and is back as long after


def _running_min(x: np.ndarray, radius: int) -> np.ndarray:
    """min of x[i - radius .. i + radius] for each i, past the ends as 1 (nothing to limit)."""
    out = np.concatenate([np.ones(radius, x.dtype), x, np.ones(radius, x.dtype)])
    width, span = 2 * radius + 1, 1
    while span < width:  # windows of span samples, doubled: log2(width) passes, not width
        step = min(span, width - span)
        out = np.minimum(out[:-step], out[step:])
        span += step
    return out


def _moving_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """mean of x[i - radius .. i + radius] for each i, past the ends as the end sample."""
    padded = np.pad(x.astype(np.float64), radius, mode="edge")
    sums = np.concatenate([[0.0], np.cumsum(padded)])
    return ((sums[2 * radius + 1 :] - sums[: -2 * radius - 1]) / (2 * radius + 1)).astype(x.dtype)


def limit_peaks(sound: np.ndarray, sample_rate: int, ceiling: float = CEILING) -> np.ndarray:
    """`sound` [samples] with no sample over `ceiling` and every sample more than twice
    HOLD_SECONDS from one that was over it as it was; the same array when none is over.

    Each sample's gain is the least that any sample within HOLD_SECONDS of it needs, averaged
    over HOLD_SECONDS either side: never more than its own sample needs (every gain averaged
    there is at most that), and changing smoothly."""
    magnitude = np.abs(sound)
    if not magnitude.size or float(magnitude.max()) <= ceiling:
        return sound
    radius = max(1, int(HOLD_SECONDS * sample_rate))
    needed = np.minimum(1.0, ceiling / np.maximum(magnitude, ceiling)).astype(np.float32)
    gain = _moving_mean(_running_min(needed, radius), radius)
    # the mean of gains at most `needed` is at most `needed`, but for rounding
    return np.clip(sound * gain, -ceiling, ceiling)
