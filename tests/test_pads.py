"""The pad bank of dkvae_live/pads.py: bad values refused, changes atomic under threads."""

from __future__ import annotations

import itertools
import os
import sys
import threading
from types import FrameType
from typing import Any

import pytest

from dkvae_live.pads import PadBank, default_pads


def test_pad_bank_refuses_bad_values_and_keeps_the_pad() -> None:
    pads = PadBank(default_pads(("kick", "snare"), 4), ("kick", "snare"), 4)
    before = pads.get(36)
    for call in (
        lambda: pads.update(36, latent=[0.0, 1.0]),
        lambda: pads.update(36, latent=[0.0, 1.0, float("nan"), 0.0]),
        lambda: pads.set_dim(36, 4, 0.0),
        lambda: pads.update(36, class_name="gong"),
        lambda: pads.update(36, gain=-1.0),
        lambda: pads.update(36, pan=2.0),
    ):
        with pytest.raises(ValueError):
            call()
    assert pads.get(36) == before
    assert pads.get(42) is not None and pads.get(42).class_name == "kick"  # type: ignore[union-attr]


def test_pad_bank_changes_are_atomic_under_threads() -> None:
    """Two writers at once, and whatever another thread reads is one writer's whole latent,
    never a mix. A reader thread only catches a pad published in two steps if the scheduler
    happens to switch in between (the last version of this test passed with such a pad), so
    the reads run between every two bytecodes of the writers, changes included: at every point
    where another thread could run, whatever the interpreter or the scheduler."""
    pads = PadBank(default_pads(("kick",), 8), ("kick",), 8)
    pads.update(36, latent=[0.0] * 8)
    whole = {(value,) * 8 for value in (0.0, 1.0, 2.0)}
    seen: list[tuple[float, ...]] = []  # the latent at each bytecode, in the order they ran
    inside_update = 0

    def read_between_bytecodes(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal inside_update
        frame.f_trace_opcodes = True
        if event == "opcode":  # the tracer is not traced: its own reads add no bytecodes
            seen.append(pads.get(36).latent)  # type: ignore[union-attr]
            inside_update += frame.f_code is PadBank.change.__code__
        return read_between_bytecodes

    def writer(value: float) -> None:
        sys.settrace(read_between_bytecodes)
        try:
            for _ in range(200):
                pads.update(36, latent=[value] * 8)
        finally:
            sys.settrace(None)

    threads = [threading.Thread(target=writer, args=(v,)) for v in (1.0, 2.0)]
    run_interleaved(threads)
    torn = [latent for latent in seen if latent not in whole]
    assert torn == [], f"{len(torn)} of {len(seen)} reads saw a mix, e.g. {torn[0]}"
    assert inside_update >= 400 * 10, f"only {inside_update} reads during a change"
    values = [latent[0] for latent in seen if latent[0] != 0.0]
    hands = sum(a != b for a, b in itertools.pairwise(values))
    assert hands >= 10, f"the writers took turns only {hands} times: they did not overlap"


def test_two_dimensions_set_at_once_on_one_pad_both_stay() -> None:
    """Two controllers on two dimensions of one pad, turned at once from two threads: neither
    change is lost (a change read the pad, and wrote back a latent the other had changed)."""
    pads = PadBank(default_pads(("kick",), 8), ("kick",), 8)
    pads.update(36, latent=[0.0] * 8)
    seen: list[tuple[float, ...]] = []  # the latent after each change, in the order read
    order = threading.Lock()

    def read(note: int) -> None:
        with order:
            seen.append(pads.get(note).latent)  # type: ignore[union-attr]

    pads.on_change = read

    def turn(dim: int) -> None:
        for value in range(1, 2001):
            pads.set_dim(36, dim, value / 400)

    threads = [threading.Thread(target=turn, args=(dim,)) for dim in (0, 1)]
    run_interleaved(threads)
    for dim in (0, 1):
        went_back = sum(b[dim] < a[dim] for a, b in itertools.pairwise(seen))
        assert went_back == 0, f"dimension {dim} went back {went_back} times: a change was lost"
    assert pads.get(36).latent[:2] == (5.0, 5.0)  # type: ignore[union-attr]


def run_interleaved(threads: list[threading.Thread]) -> None:
    """Start the threads and wait for them, switching between them as often as Python can.
    They share one core: on two idle cores the thread that holds the GIL took it back before
    the other woke up, and the writers took turns a few times in a run, not hundreds."""
    switch_interval = sys.getswitchinterval()
    cores = os.sched_getaffinity(0)
    sys.setswitchinterval(1e-6)
    os.sched_setaffinity(0, {min(cores)})  # threads started from here inherit it
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        os.sched_setaffinity(0, cores)
        sys.setswitchinterval(switch_interval)
