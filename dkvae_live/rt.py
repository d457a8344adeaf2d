"""Real-time scheduling for the daemon's own threads, where the system allows it; their names
as the system shows them (ps -L, top -H); keeping the garbage collector short; malloc.

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
import threading
from pathlib import Path


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


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _libc()
PR_SET_NAME = 15  # prctl's option, from linux/prctl.h
THREAD_NAME_BYTES = 15  # Linux keeps 15 bytes of a thread's name (16 with the NUL)
M_MMAP_THRESHOLD = -3  # mallopt's parameter, from glibc's malloc.h
LARGE_BUFFER_BYTES = 4 << 20


def map_large_buffers_apart() -> None:
    """Have glibc give each buffer of LARGE_BUFFER_BYTES or more a mapping of its own, which
    goes back to the system the moment it is freed. Call it once, first thing in the process.

    glibc starts with that threshold at 128 KiB but raises it, up to 32 MiB, each time a large
    buffer is freed; after a few renders the decoder's batch outputs (7 MiB for a pad with 40
    variants) come from the heap, and what a render frees there stays resident until a trim,
    and not all of it then. At rest after each minute of the soak's set the daemon's anonymous
    memory went 69-84 MiB with glibc's moving threshold, 69-74 MiB with this. Smaller buffers
    stay in the heap, where reusing them is cheap: at 1 MiB, before onnxruntime kept its own
    arena (model.py), its tensors were mapped afresh every run and a 24-pad render took twice
    as long (71 ms, not 36).
    MALLOC_MMAP_THRESHOLD_ in the environment, where set, wins."""
    if _LIBC is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _LIBC.mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES)


def name_current_thread(name: str) -> None:
    """Give the calling thread `name` where the system shows it (`top -H`, `ps -L`,
    /proc/PID/task/TID/comm); Python's own thread names stay inside Python. Longer names are
    cut to THREAD_NAME_BYTES."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_NAME, name.encode()[:THREAD_NAME_BYTES], 0, 0, 0)


def name_thread(thread: int, name: str) -> None:
    """Give the thread with this `pthread_t` `name` (see name_current_thread); 0 (no such
    thread) is left alone, as glibc would follow it."""
    if _LIBC is not None and thread:
        _LIBC.pthread_setname_np(ctypes.c_ulong(thread), name.encode()[:THREAD_NAME_BYTES])


def rename_threads(old: str, new: str) -> None:
    """Name `new` every other thread of this process still named `old`: the threads libraries
    made while they loaded, which took the process's name then."""
    for task in Path("/proc/self/task").iterdir():
        try:
            if int(task.name) != threading.get_native_id() and _comm(task) == old:
                (task / "comm").write_text(new[:THREAD_NAME_BYTES])
        except OSError:  # the thread ended meanwhile
            continue


def current_thread_name() -> str:
    return _comm(Path(f"/proc/self/task/{threading.get_native_id()}"))


def _comm(task: Path) -> str:
    return (task / "comm").read_text().strip()


def thread_names() -> list[str]:
    """The names of this process's threads as the system shows them, sorted (Linux)."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append(_comm(task))
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(names)


def release_free_memory() -> None:
    """Give the memory that malloc holds free back to the system (glibc's malloc_trim).

    Rendered sounds and decoder runs are large buffers made and freed in several threads; glibc
    keeps what they free in per-thread arenas, and the resident size creeps up for minutes. The
    call runs without the GIL (ctypes lets it go), so the audio callback is not held up."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
