"""Counts of dropped input for the status reply, logged at most once a second per reason."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter


class Dropped:
    """Dropped input counted by reason ("osc.malformed", "midi.sysex", ...)."""

    def __init__(self, log: logging.Logger, interval: float = 1.0) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._log = log
        self._interval = interval
        self._last_logged: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()

    def count(self, reason: str, detail: str = "") -> None:
        """Count one dropped message; log it unless this reason was logged within a second."""
        now = time.monotonic()
        with self._lock:
            self._counts[reason] += 1
            if now - self._last_logged.get(reason, -1e9) < self._interval:
                self._unlogged[reason] += 1
                return
            self._last_logged[reason] = now
            suppressed = self._unlogged.pop(reason, 0)
        more = f" (and {suppressed} more since the last report)" if suppressed else ""
        self._log.warning("dropped %s: %s%s", reason, detail, more)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
