"""Plug in a pad and play: the daemon connects MIDI sources by itself, on a real JACK server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness.live import Capture, Daemon, MidiSender, without_xrun

pytestmark = pytest.mark.jack


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Ask every 0.5 s: a status is about 45 replies, and replies are limited to 200 a second."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def sources(daemon: Daemon) -> list[str]:
    listed = str(daemon.osc.status()["midi_sources"])
    return listed.split(", ") if listed else []


def test_a_pad_plugged_in_after_the_start_is_connected_and_plays(
    daemon: Daemon, capture: Capture
) -> None:
    other = MidiSender(None)  # a program's MIDI output, not a device: left alone
    pad = MidiSender(None, physical=True)  # what a USB pad controller looks like to JACK
    try:
        wait_for(lambda: pad.port_name in sources(daemon), "the pad was not connected")
        assert f"MIDI in: connected {pad.port_name}" in daemon.log()
        time.sleep(0.3)
        assert other.port_name not in sources(daemon)
        without_xrun(daemon, capture, lambda: capture.hit(lambda: pad.note_on(38, 127)))
    finally:
        pad.close()
        other.close()
    wait_for(lambda: sources(daemon) == [], "an unplugged pad is still listed")


def test_midi_port_narrows_the_sources_connected_at_the_start(
    jack: None, sine_model: Path, gm_kit: Path
) -> None:
    pads = [MidiSender(None, physical=True) for _ in range(2)]
    wanted = pads[1].port_name  # a part of a name: this whole one
    daemon = Daemon(sine_model, "--kit", str(gm_kit), "--midi-port", wanted)
    try:
        daemon.wait_ready()
        assert sources(daemon) == [pads[1].port_name]
    finally:
        daemon.stop()
        for pad in pads:
            pad.close()


def test_midi_port_none_connects_nothing(jack: None, sine_model: Path, gm_kit: Path) -> None:
    daemon = Daemon(sine_model, "--kit", str(gm_kit), "--midi-port", "none")
    try:
        daemon.wait_ready()
        pad = MidiSender(None, physical=True)
        try:
            time.sleep(0.5)
            assert sources(daemon) == []
        finally:
            pad.close()
    finally:
        daemon.stop()
