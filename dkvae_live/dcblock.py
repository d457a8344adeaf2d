"""A first-order DC blocker for rendered sounds (numpy only, exact, about 0.4 ms per 1 s sound).

Decoders leave an offset and a slow drift under 10 Hz in their tails: inaudible, but it eats
headroom, keeps a voice sounding for the whole buffer (it never falls under the silence the
render worker trims) and thumps when many voices stop. ``y[n] = x[n] - x[n-1] + r y[n-1]`` with
its -3 dB point at ``cutoff_hz`` removes it, as a mixing desk's DC blocker would.
"""

from __future__ import annotations

import numpy as np

CUTOFF_HZ = 20.0
_BLOCK = 4096  # r ** -_BLOCK stays far inside float64's range for any cutoff used here


def dc_block(audio: np.ndarray, sample_rate: int, cutoff_hz: float = CUTOFF_HZ) -> np.ndarray:
    """Filter each row of ``audio`` ([samples] or [batch, samples]); float32, same shape.

    The recursion is unrolled block by block: inside a block,
    ``y[n] = r**n * (r * y[-1] + cumsum(u[k] * r**-k))`` with ``u = diff(x)``, in float64.
    """
    x = np.asarray(audio, np.float64)
    rows = np.atleast_2d(x)
    r = 1.0 - 2.0 * np.pi * cutoff_hz / sample_rate
    u = np.diff(rows, axis=1, prepend=0.0)
    y = np.empty_like(rows)
    state = np.zeros(rows.shape[0])
    k = np.arange(_BLOCK)
    grow, decay = r**-k, r**k
    for start in range(0, rows.shape[1], _BLOCK):
        n = min(_BLOCK, rows.shape[1] - start)
        acc = np.cumsum(u[:, start : start + n] * grow[:n], axis=1)
        y[:, start : start + n] = (acc + state[:, None] * r) * decay[:n]
        state = y[:, start + n - 1]
    return y.reshape(x.shape).astype(np.float32)
