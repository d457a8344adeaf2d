"""The pad bank of dkvae_live/pads.py: bad values refused, changes atomic under threads."""

from __future__ import annotations

import sys
import threading
import time

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
    """Two writers and a reader at once: the reader sees each writer's whole latent, never a
    mix. It reads until it has seen the latent change from one writer's to the other's many
    times, so the reads did overlap the writes; threads switch as often as the interpreter
    allows, so a pad published in two steps would show."""
    pads = PadBank(default_pads(("kick",), 8), ("kick",), 8)
    done = threading.Event()

    def writer(value: float) -> None:
        while not done.is_set():
            pads.update(36, latent=[value] * 8)

    threads = [threading.Thread(target=writer, args=(v,)) for v in (1.0, 2.0)]
    changes, last = 0, 0.0
    torn = []
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while changes < 200 and time.monotonic() < deadline:
            latent = pads.get(36).latent  # type: ignore[union-attr]
            if len(set(latent)) > 1:
                torn.append(latent)
            elif latent[0] != last:
                changes, last = changes + 1, latent[0]
    finally:
        done.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(switch_interval)
    assert changes >= 200, f"the reads overlapped only {changes} changes of writer"
    assert torn == [], f"{len(torn)} torn latents, e.g. {torn[0]}"
