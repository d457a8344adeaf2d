"""How long a real-time thread rests after its work: a share of a core, and bursts within it.

Linux stops every real-time thread of a core for the rest of a second once they have used 95 %
of it (RT throttling), JACK's threads with them. The render worker is such a thread, and kept
busy (a sweep, a model swap) it must rest. Resting a fixed part of every piece of work also
held back what comes after a long rest: a fifth of a pad's full render after a knob turned
once. `Duty` is a token bucket instead: credit comes at `share` per second of wall time, work
spends it at one per second, and a rest is owed only once the credit is spent. So a rested
thread works `burst` seconds on end, and over any longer stretch it works at most `share` of
the time (plus that one burst).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Duty:
    """The rests that keep one thread's work under `share` of its time, after a first `burst`
    of seconds without any. Not thread-safe: one thread's own account."""

    def __init__(
        self, share: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not 0.0 < share < 1.0 or burst < 0.0:
            raise ValueError(f"share must lie in (0, 1) and burst be >= 0: {share}, {burst}")
        self._share = share
        self._clock = clock
        # credit: the work the thread may do before it owes a rest, net of the credit that
        # work itself earns; a full bucket lasts `burst` seconds of work
        self._capacity = (1.0 - share) * burst
        self._credit = self._capacity
        self._at = clock()

    def owed(self, since: float) -> float:
        """Account for work from `since` until now, the time before it since the last call
        idle (a rest, or waiting for work), and return the rest owed, in seconds: 0 while
        credit is left."""
        now = self._clock()
        idle = max(0.0, since - self._at)
        work = max(0.0, now - max(since, self._at))
        self._credit = min(self._capacity, self._credit + self._share * idle)
        self._credit -= (1.0 - self._share) * work
        self._at = now
        return max(0.0, -self._credit / self._share)
