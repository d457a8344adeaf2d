"""The real-time helpers of dkvae_live/rt.py: the heap settled and memory given back."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

from dkvae_live.rt import release_free_memory, settle_heap


class Node:
    def __init__(self) -> None:
        self.other: object = self


def test_settle_heap_collects_cycles_first_then_keeps_the_living_out_of_collections() -> None:
    gc.disable()  # no automatic collection may free the cycle in between
    garbage, alive = Node(), Node()
    dead = weakref.ref(garbage)
    del garbage  # a cycle: only the collector can free it
    try:
        settle_heap()
        assert dead() is None  # collected, not frozen for ever
        assert gc.get_freeze_count() > 0
        assert alive not in gc.get_objects()  # frozen: later collections do not walk it
    finally:
        gc.unfreeze()
        gc.enable()


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_release_free_memory_gives_freed_buffers_back_to_the_system() -> None:
    # 1500 buffers of 100 KiB (under malloc's mmap threshold: they come from its heap), all
    # freed but the last, which keeps the heap from shrinking by itself.
    buffers = [np.ones(25_600, np.float32) for _ in range(1500)]
    last = buffers.pop()
    del buffers
    held = resident_mib()
    release_free_memory()
    assert resident_mib() < held - 100  # of the ~146 MiB freed
    assert last[0] == 1.0


FREE_A_LARGE_BUFFER_TWICE = """
import sys
from pathlib import Path
import numpy as np
from dkvae_live.rt import map_large_buffers_apart

def resident_mib():
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024

if sys.argv[1] == "apart":
    map_large_buffers_apart()
before = resident_mib()
for _ in range(2):  # the first free raises glibc's own threshold to the buffer's size
    buffer = np.ones(6 << 20, np.float32)  # 24 MiB
    del buffer
print(resident_mib() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_large_buffers_go_back_to_the_system_when_freed() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    growth = {
        how: float(
            subprocess.run(
                [sys.executable, "-c", FREE_A_LARGE_BUFFER_TWICE, how],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            ).stdout
        )
        for how in ("apart", "glibc's default")
    }
    assert growth["apart"] < 2, growth
    assert growth["glibc's default"] > 20, growth  # the heap kept the second 24 MiB
