"""The MIDI boundary of dkvae_live/midi_in.py: bytes checked, and ALSA's hand-over."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dkvae_live.midi_in import MidiInput


def test_midi_bytes_are_checked_at_the_boundary() -> None:
    notes: list[tuple[int, int]] = []
    controls: list[tuple[int, int, int]] = []
    dropped: list[str] = []
    stops: list[None] = []
    midi = MidiInput(
        lambda n, v: notes.append((n, v)),
        lambda *c: controls.append(c),
        lambda r, d: dropped.append(r),
        channel=9,
        on_stop_all=lambda: stops.append(None),
    )
    for data in (
        [0x99, 36, 100],
        [0x99, 38, 0],
        [0x89, 36, 0],
        [0x90, 40, 100],
        [0xB9, 74, 64],
        [0xB9, 123, 0],
        [0xB0, 120, 0],
        [0xF0, 1, 2, 0xF7],
        [36, 100],
        [0x99, 36],
        [0x99, 200, 1],
        [],
        [0x99, 36, 100, 5],
    ):
        midi.handle(data)
    assert notes == [(36, 100)]  # velocity 0 is a note-off; channel 1 is ignored
    assert controls == [(9, 74, 64)]
    assert stops == [None]  # all notes off on our channel; all sound off on another
    assert dropped == [
        "midi.sysex",
        "midi.malformed",
        "midi.malformed",
        "midi.malformed",
        "midi.malformed",
        "midi.malformed",
    ]


class FakeAlsaMidiIn:
    """What MidiInput uses of an rtmidi.MidiIn on ALSA (no ALSA sequencer here)."""

    def __init__(self) -> None:
        self.callback = None
        self.polled = 0

    def ignore_types(self, **kinds: bool) -> None:
        pass

    def open_virtual_port(self, name: str) -> None:
        pass

    def set_callback(self, callback) -> None:
        self.callback = callback

    def cancel_callback(self) -> None:
        self.callback = None

    def get_message(self) -> None:
        self.polled += 1

    def get_ports(self) -> list[str]:  # the hardware sources looked for: none here
        return []

    def close_port(self) -> None:
        pass

    def delete(self) -> None:
        pass


def voluntary_switches(native_id: int) -> int:
    status = Path(f"/proc/self/task/{native_id}/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("voluntary_"))


def test_alsa_midi_is_handed_over_by_rtmidis_thread_and_the_midi_thread_sleeps_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dkvae_live.midi_in as midi_in

    fake = FakeAlsaMidiIn()
    monkeypatch.setattr(midi_in, "_open_client", lambda api, name: fake)
    monkeypatch.setattr(midi_in, "input_ports_of_others", lambda api: [])
    notes: list[tuple[int, int]] = []
    midi = MidiInput(lambda n, v: notes.append((n, v)), lambda *c: None, lambda r, d: None)
    midi.open("alsa", "dkvae", None, "midi_in")
    midi.start()
    try:
        assert fake.callback is not None
        for velocity in range(1, 101):
            fake.callback(([0x99, 36, velocity], 0.0), None)
        deadline = time.monotonic() + 2
        while len(notes) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert notes == [(36, v) for v in range(1, 101)]
        native_id = midi._thread.native_id
        assert native_id is not None
        before = voluntary_switches(native_id)
        time.sleep(1.0)
        assert voluntary_switches(native_id) - before <= 2  # asleep, not polling
        assert fake.polled == 0
    finally:
        stopped = time.monotonic()
        midi.stop()
    assert time.monotonic() - stopped < 0.5 and not midi._thread.is_alive()
    assert fake.callback is None
