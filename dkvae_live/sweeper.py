"""The sweeper: a thread that frees the rendered sounds no voice plays any more, and gives the
memory freed back to the system.

A sound replaced by the render worker stays alive until the audio side can no longer read it
(Mixer.sweep decides); this thread asks once a second. Free memory goes back to the system
(rt.release_free_memory) once sounds stop being freed (a pad moved, a kit or model loaded, the
start-up), and every TRIM_EVERY seconds while they keep being freed. At rest it wakes once a
second, sweeps nothing and trims nothing. Other work the daemon does once a second rides on the
same wake (`also`: the engine's look at the kit file), rather than waking a thread of its own
at the same moment, where the two would wait for the GIL in turn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .mixer import Mixer
from .rt import name_current_thread, release_free_memory

SWEEP_SECONDS = 1.0
TRIM_EVERY = 30  # sweeps between two trims while sounds keep being freed (30 s)
THREAD_NAME = "dkvae-sweep"

log = logging.getLogger(__name__)


class Sweeper:
    """Sweeps `mixer` and trims the heap on a thread of its own, and calls `also` after each
    sweep: `start()`, `stop()`."""

    def __init__(self, mixer: Mixer, also: Callable[[], None] = lambda: None) -> None:
        self._mixer = mixer
        self._also = also
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        name_current_thread(THREAD_NAME)
        freed = since_trim = 0
        trim_due = True  # what the start-up freed
        while not self._stopping.wait(SWEEP_SECONDS):
            since_trim += 1
            self._mixer.sweep()
            count = self._mixer.sounds_freed  # read once: the render worker also frees
            quiet = count == freed
            freed = count
            trim_due = trim_due or not quiet
            if trim_due and (quiet or since_trim >= TRIM_EVERY):
                release_free_memory()
                trim_due = False
                since_trim = 0
            try:
                self._also()
            except Exception:  # the sweeps go on: a thread that dies leaves sounds unfreed
                log.exception("the sweeper's once-a-second work failed")
