"""Real-time scheduling for the daemon's own threads, where the system allows it.

On JACK the audio callback is C and never needs Python's GIL. Under PortAudio it is a Python
callback: if a thread of ours holds the GIL and is preempted by some other busy process, the
callback waits and the audio glitches. The MIDI thread (it mostly sleeps) and the render worker
(it rests after each pass) therefore ask for SCHED_FIFO at a priority below the audio threads'
own. The OSC thread does not: a flood of datagrams would let it take a whole core.

For the same PortAudio callback (and for MIDI latency everywhere), the cyclic garbage collector
is the other thing that holds the GIL for long: a full collection
walks every object alive (the daemon has about 36,000, mostly onnxruntime, numpy and python-osc
internals) in one go, measured at 9-23 ms, 7 to 17 audio periods. `settle_heap` moves the objects
alive now into the collector's permanent generation, so later collections only walk what was
made since; objects in it are still freed as soon as nothing refers to them. Garbage that
exists when they are frozen (cycles not yet collected) is collected first, or it would stay.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import Callable


def promote_current_thread(priority: int) -> bool:
    """Run the calling thread with SCHED_FIFO at `priority`; False where that is not allowed."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):  # not permitted (no rtprio limit), or not Linux
        return False
    return True


def settle_heap() -> None:
    """Keep the objects alive now out of future garbage collections (see the module text).

    Call it after start-up and after loading a model or a kit, in the thread that loaded it.
    The first call walks the whole heap (before the audio starts); later ones only the objects
    made since the last (0.1 ms, measured with a model swap in between)."""
    gc.collect()
    gc.freeze()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Give the memory that malloc holds free back to the system (glibc's malloc_trim).

    Rendered sounds and decoder runs are large buffers made and freed in several threads; glibc
    keeps what they free in per-thread arenas, and the resident size creeps up for minutes. The
    call runs without the GIL (ctypes lets it go), so the audio callback is not held up."""
    if _TRIM is not None:
        _TRIM(0)
