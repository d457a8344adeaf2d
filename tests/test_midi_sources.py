"""Which MIDI sources the daemon connects by itself; ALSA's, with a stand-in for rtmidi (this
machine has no ALSA sequencer)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from dkvae_live import midi_in
from dkvae_live.midi_in import MidiInput, alsa_is_hardware, wants_source


def test_the_default_takes_physical_sources_a_name_narrows_and_none_takes_none() -> None:
    assert wants_source(None, "system:midi_capture_1", physical=True)
    assert not wants_source(None, "a2j:Some Program", physical=False)
    assert wants_source("launch", "system:Launchpad Mini", physical=True)
    assert wants_source("launch", "seq:Launchpad (virtual)", physical=False)
    assert not wants_source("launch", "system:nanoPAD2", physical=True)
    assert not wants_source("None", "system:midi_capture_1", physical=True)


def test_alsa_hardware_clients_are_the_kernels() -> None:
    assert alsa_is_hardware("nanoPAD2:nanoPAD2 MIDI 1 24:0")
    assert not alsa_is_hardware("Midi Through:Midi Through Port-0 14:0")
    assert not alsa_is_hardware("System:Timer 0:0")
    assert not alsa_is_hardware("VMPK Output:out 128:0")
    assert not alsa_is_hardware("no address here")


class FakeMidiIn:
    ports: ClassVar[list[str]] = []
    opened: ClassVar[list[FakeMidiIn]] = []

    def __init__(self, api: int, name: str, queue_size_limit: int = 0) -> None:
        self.port: str | None = None
        self.deleted = False
        FakeMidiIn.opened.append(self)

    def ignore_types(self, **kinds: bool) -> None:
        pass

    def get_ports(self) -> list[str]:
        return list(FakeMidiIn.ports)

    def open_virtual_port(self, name: str) -> None:
        self.port = f"virtual {name}"

    def open_port(self, index: int, name: str) -> None:
        self.port = FakeMidiIn.ports[index]

    def set_callback(self, callback: Any) -> None:
        self.callback = callback

    def cancel_callback(self) -> None:
        pass

    def close_port(self) -> None:
        self.port = None

    def delete(self) -> None:
        self.deleted = True


class FakeRtmidi:
    API_LINUX_ALSA, API_UNIX_JACK = 1, 2
    MidiIn = FakeMidiIn
    SystemError = OSError


def test_alsa_connects_hardware_sources_as_they_come_and_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(midi_in, "_rtmidi", lambda: FakeRtmidi)
    FakeMidiIn.opened = []
    pad, through = "nanoPAD2:nanoPAD2 MIDI 1 24:0", "Midi Through:Midi Through Port-0 14:0"
    FakeMidiIn.ports = [through, pad, "dkvae:midi_in 130:0"]
    notes: list[tuple[int, int]] = []
    midi = MidiInput(lambda n, v: notes.append((n, v)), lambda c, n, v: None, lambda r, d: None)
    assert midi.open("alsa", "dkvae", None, "midi_in") == "dkvae:midi_in"
    assert midi.sources() == [pad]
    source = next(m for m in FakeMidiIn.opened if m.port == pad)
    source.callback(([0x99, 38, 100], 0.0))
    assert midi._read_arrived() == [[0x99, 38, 100]]  # into the one queue the thread reads
    keyboard = "Keystation:Keystation MIDI 1 28:0"
    FakeMidiIn.ports = [through, keyboard, "dkvae:midi_in 130:0"]  # unplugged one, plugged one
    assert midi._scan is not None
    midi._scan()
    assert midi.sources() == [keyboard]
    assert source.deleted
    midi.stop()
    assert midi.sources() == []
