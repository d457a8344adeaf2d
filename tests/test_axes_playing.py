"""Playing the timbre axes: OSC over real UDP, kits that keep them, MIDI CC learn."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.synth_models import SINE_DECAY_STEP, SINE_PITCH_STEP, sine_axes_json, sine_decoder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from dkvae_live.engine import Engine
from dkvae_live.kit import load_kit
from dkvae_live.osc_api import OscApi
from dkvae_live.osc_in import OscServer
from dkvae_live.settings import Settings

PITCH = np.array(SINE_PITCH_STEP)  # the sine model's z[0]: half an octave up
DECAY = np.array(SINE_DECAY_STEP)


class Remote:
    """The engine's OSC address space on a real UDP socket, and a client that talks to it."""

    def __init__(self, engine: Engine) -> None:
        self.server = OscServer("127.0.0.1", 0, engine.dropped.count)
        OscApi(engine, self.server)
        self.server.start()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5.0)

    def send(self, address: str, *args: Any) -> None:
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        self.sock.sendto(builder.build().dgram, self.server.address)

    def reply(self) -> tuple[str, list[Any]]:
        message = OscMessage(self.sock.recv(65536))
        return message.address, list(message.params)

    def close(self) -> None:
        self.server.stop()
        self.sock.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    model = sine_decoder(
        tmp_path / "model" / "decoder.onnx", metadata={"dkvae.axes": sine_axes_json()}
    )
    yield Engine(Settings(model=model, kit_dir=tmp_path / "kits"))


@pytest.fixture
def remote(engine: Engine) -> Iterator[Remote]:
    r = Remote(engine)
    yield r
    r.close()


def test_an_axis_moves_the_pad_from_its_latent_as_loaded(engine: Engine, remote: Remote) -> None:
    loaded = np.array(engine.pads.get(36).latent)  # type: ignore[union-attr]
    remote.send("/dkvae/pad/axis", 36, "pitch", 2.0)
    remote.send("/dkvae/pad/axis", 36, 1, -1.0)  # decay, by index
    remote.send("/dkvae/pad/axis", 36, "pitch", 1.0)  # back down: relative to the loaded latent
    remote.send("/dkvae/pad/axes", 36)
    assert remote.reply() == ("/dkvae/pad/axes", [36, 0.0, -1.0, 1.0, 0.0, "punch", "pitch"])
    played = np.array(engine.pads.get(36).latent)  # type: ignore[union-attr]
    np.testing.assert_allclose(played, loaded + PITCH - DECAY, atol=1e-6)
    remote.send("/dkvae/pad/reset", 36)
    assert remote.reply()[0] == "/dkvae/pad"
    remote.send("/dkvae/pad/axes", 36)
    assert remote.reply() == ("/dkvae/pad/axes", [36, 0.0, 0.0, 0.0, 0.0, "punch", "pitch"])
    np.testing.assert_allclose(engine.pads.get(36).latent, loaded)  # type: ignore[union-attr]


def test_the_xy_pad_moves_the_two_best_fitted_axes_at_once(engine: Engine, remote: Remote) -> None:
    """x and y set the class's two main axes (by r2) in one change: one render, not two."""
    loaded = np.array(engine.pads.get(36).latent)  # type: ignore[union-attr]
    changes: list[int] = []
    tell = engine.pads.on_change

    def on_change(note: int) -> None:
        changes.append(note)
        tell(note)

    engine.pads.on_change = on_change
    remote.send("/dkvae/pad/xy", 36, 1.0, -2.0)
    remote.send("/dkvae/pad/axes", 36)
    assert remote.reply() == ("/dkvae/pad/axes", [36, 0.0, 0.0, -2.0, 1.0, "punch", "pitch"])
    assert changes == [36]
    played = np.array(engine.pads.get(36).latent)  # type: ignore[union-attr]
    np.testing.assert_allclose(played, loaded + 1.0 * -DECAY - 2.0 * PITCH, atol=1e-6)
    # a class without axes names none, and its XY pad is refused saying why
    remote.send("/dkvae/pad/axes", 38)
    assert remote.reply() == ("/dkvae/pad/axes", [38, 0.0, 0.0, 0.0, 0.0, "none", "none"])
    remote.send("/dkvae/pad/xy", 38, 0.5, 0.5)
    address, (what, why) = remote.reply()
    assert (address, what) == ("/dkvae/error", "/dkvae/pad/xy")
    assert "no axes for class 'snare'" in why
    remote.send("/dkvae/pad/xy", 36, 0.0, 3.5)
    assert "axis value must be in range -3..3" in remote.reply()[1][1]
    assert engine.pads.get(36).axes == (0.0, 0.0, -2.0, 1.0)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((36, "loudness", 1.0), "unknown axis 'loudness'"),
        ((36, 4, 1.0), "axis index must be in range 0..3"),
        ((36, "pitch", 3.5), "axis value must be in range -3..3"),
        ((38, "pitch", 1.0), "no axes for class 'snare'"),
    ],
)
def test_bad_axis_requests_are_refused_saying_why(
    engine: Engine, remote: Remote, args: tuple[Any, ...], message: str
) -> None:
    before = engine.pads.get(args[0])
    remote.send("/dkvae/pad/axis", *args)
    address, (what, why) = remote.reply()
    assert address == "/dkvae/error" and what == "/dkvae/pad/axis" and message in why
    assert engine.pads.get(args[0]) == before
    assert engine.dropped.snapshot()["osc.invalid"] == 1


def test_a_kit_saved_with_axes_loads_the_same_sounds(engine: Engine, tmp_path: Path) -> None:
    engine.set_axis(36, "brightness", 1.5)
    engine.set_axis(36, "punch", -2.0)
    saved = engine.pads.get(36)
    path = tmp_path / "kits" / "axes.toml"
    engine.save_kit_file(path)
    assert "axes = { brightness = 1.5, decay = 0.0, pitch = 0.0, punch = -2.0 }" in (
        path.read_text()
    )
    info = engine.decoder.info
    again = load_kit(path, info.class_names, info.latent_size).pads[36]
    assert again == saved  # latent and axes: the same sound, the same knobs
    engine.set_axis(36, "brightness", 0.0)
    engine.load_kit_file(path)
    assert engine.pads.get(36) == saved
    # a direct latent change starts the axes again from zero
    engine.pads.set_dim(36, 3, 0.5)
    assert engine.pads.get(36).axes == ()  # type: ignore[union-attr]


def test_midi_cc_learn_drives_an_axis_and_the_kit_keeps_it(
    engine: Engine, remote: Remote, tmp_path: Path
) -> None:
    loaded = np.array(engine.pads.get(36).latent)  # type: ignore[union-attr]
    remote.send("/dkvae/pad/learn_axis", 36, "decay")
    remote.send("/dkvae/pad/axes", 36)  # the learn is in place once this is answered
    remote.reply()
    engine._control(9, 21, 127)  # the MIDI thread: CC 21 on channel 10, full up
    assert remote.reply() == ("/dkvae/pad/learned_axis", [36, "decay", 21, 10])
    np.testing.assert_allclose(
        engine.pads.get(36).latent,  # type: ignore[union-attr]
        loaded + 3.0 * DECAY,
        atol=1e-6,
    )
    engine._control(9, 21, 0)
    assert engine.pads.get(36).axes[1] == -3.0  # type: ignore[union-attr]
    path = tmp_path / "kits" / "learned.toml"
    engine.save_kit_file(path)
    assert 'axis = "decay"' in path.read_text()
    info = engine.decoder.info
    (mapping,) = load_kit(path, info.class_names, info.latent_size).cc
    assert (mapping.axis, mapping.note, mapping.controller) == ("decay", 36, 21)
