"""A first-order DC blocker for rendered sounds (numpy only, exact, about 0.4 ms per 1 s sound).

Decoders leave an offset and a slow drift under 10 Hz in their tails: inaudible, but it eats
headroom, keeps a voice sounding for the whole buffer (it never falls under the silence the
render worker trims) and thumps when many voices stop. ``y[n] = x[n] - x[n-1] + r y[n-1]`` with
its -3 dB point at ``cutoff_hz`` removes it, as a mixing desk's DC blocker would.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

CUTOFF_HZ = 20.0
_BLOCK = 4096  # r ** -_BLOCK stays far inside float64's range for any cutoff used here


@lru_cache(maxsize=8)
def _powers(r: float) -> tuple[np.ndarray, np.ndarray]:
    """``r**-k`` and ``r**k`` for k in 0.._BLOCK-1, read-only: the same for every sound of a
    rate, and a third of a short sound's filtering to make afresh."""
    k = np.arange(_BLOCK)
    down, up = r**-k, r**k
    down.flags.writeable = up.flags.writeable = False
    return down, up


def dc_block(audio: np.ndarray, sample_rate: int, cutoff_hz: float = CUTOFF_HZ) -> np.ndarray:
    """Filter each row of ``audio`` ([samples] or [batch, samples]); float32, same shape.

    The recursion is unrolled block by block: inside a block,
    ``y[n] = r**n * (r * y[-1] + cumsum(u[k] * r**-k))`` with ``u = diff(x)``, in float64. Every
    block's cumsum is one numpy call over a [rows, blocks, _BLOCK] array; only the state carried
    from block to block (one number per row and block) is a Python loop.
    """
    x = np.asarray(audio, np.float64)
    rows = np.atleast_2d(x)
    count, n = rows.shape
    r = 1.0 - 2.0 * np.pi * cutoff_hz / sample_rate
    blocks = max(1, -(-n // _BLOCK))
    u = np.zeros((count, blocks * _BLOCK))
    u[:, :n] = rows
    u[:, 1:n] -= rows[:, :-1]
    u = u.reshape(count, blocks, _BLOCK)
    down, up = _powers(r)
    u *= down
    np.cumsum(u, axis=2, out=u)
    ends = u[:, :, -1] * r ** (_BLOCK - 1)  # a block's last output, were its start state 0
    state = np.zeros((count, blocks))  # the output just before each block
    for block in range(1, blocks):
        state[:, block] = r**_BLOCK * state[:, block - 1] + ends[:, block - 1]
    u += (r * state)[:, :, None]
    u *= up
    return u.reshape(count, -1)[:, :n].reshape(x.shape).astype(np.float32)
