"""Program change selects a kit, as on a drum module, on a real JACK server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from harness.live import Capture, Daemon, MidiSender, dominant_frequency, without_xrun
from harness.synth_models import CLASSES, expected_frequency

from dkvae_live.kit import Kit, load_kit, save_kit
from dkvae_live.pads import default_pads
from dkvae_live.programs import kit_folder, kit_for_program

pytestmark = pytest.mark.jack


NOTE = 36


def kit(name: str, z0: float, program: int | None = None) -> Kit:
    """A kick on note 36 at 200 * 2**z0 Hz, decaying by 1/e in 40 ms; nothing else."""
    pad = replace(default_pads(CLASSES, 8)[NOTE], latent=(z0, -1.0) + (0.0,) * 6)
    return Kit(name, {NOTE: pad}, (), program)


@pytest.fixture
def kits(tmp_path: Path) -> Path:
    folder = tmp_path / "kits"
    folder.mkdir()
    save_kit(kit("low", 0.0), folder / "a-low.toml")  # place 0
    save_kit(kit("high", 1.0, program=7), folder / "b-high.toml")  # place 1, program 7
    save_kit(kit("mid", 0.5), folder / "c-mid.toml")  # place 2
    (folder / "d-broken.toml").write_text("[[pad]]\nnote = 36\n")  # place 3: no class, latent
    return folder


def test_the_kit_folder_lists_each_kit_with_the_program_that_selects_it(kits: Path) -> None:
    listed = [(e.path.name, e.name, e.program) for e in kit_folder(kits)]
    assert listed == [
        ("a-low.toml", "low", 0),
        ("b-high.toml", "high", 7),
        ("c-mid.toml", "mid", 2),
        ("d-broken.toml", "d-broken", 3),
    ]
    save_kit(kit("seven too", 0.0, program=7), kits / "e-seven.toml")
    assert kit_folder(kits)[4].program is None  # b-high says 7 first
    save_kit(kit("two", 0.0, program=2), kits / "f-two.toml")
    assert kit_folder(kits)[2].program is None  # its place is f-two's program
    assert kit_for_program(kits, 2) == kits / "f-two.toml"
    assert kit_for_program(kits, 1) == kits / "b-high.toml"  # no kit says 1: the 2nd kit
    assert kit_for_program(kits, 100) is None
    assert load_kit(kits / "b-high.toml", CLASSES, 8).program == 7


@dataclass
class Rig:
    daemon: Daemon
    capture: Capture
    midi: MidiSender


@pytest.fixture
def rig(jack: None, sine_model: Path, kits: Path) -> Iterator[Rig]:
    daemon = Daemon(sine_model, "--kit", str(kits / "a-low.toml"))
    try:
        daemon.wait_ready()
        capture = Capture(daemon.audio_port_pattern)
        midi = MidiSender(daemon.midi_port)
        capture.wait_until(1)
        yield Rig(daemon, capture, midi)
        midi.close()
        capture.close()
    finally:
        daemon.stop()


def pitch_of_a_hit(rig: Rig) -> float:
    def hit() -> float:
        rig.daemon.osc.send("/dkvae/stop")
        time.sleep(0.1)
        sound = rig.capture.hit(lambda: rig.midi.note_on(NOTE, 127), 0.04)
        return dominant_frequency(sound, rig.capture.rate)

    return without_xrun(rig.daemon, rig.capture, hit)


def test_a_program_change_plays_the_new_kit_with_no_silent_hit_between(rig: Rig) -> None:
    """Hits every 20 ms across the change, each ringing for longer: the audio never falls
    silent, its pitch goes from the old kit's to the new one's and stays there."""
    cap, low, high = rig.capture, expected_frequency(0.0, 0), expected_frequency(1.0, 0)
    assert pitch_of_a_hit(rig) == pytest.approx(low, rel=0.03)

    def switch() -> None:
        start = cap.trigger_frame()
        rig.midi.send([0xC9, 7])  # program change 7 on channel 10
        for _ in range(25):
            rig.midi.note_on(NOTE, 127)
            time.sleep(0.02)
        audio = cap.segment(start, int(0.6 * cap.rate))
        onset = int(np.flatnonzero(np.abs(audio) > 1e-3)[0])
        window = int(0.005 * cap.rate)
        played = audio[onset : onset + int(0.45 * cap.rate)]
        levels = np.sqrt(
            np.mean(played[: played.size // window * window].reshape(-1, window) ** 2, 1)
        )
        # A hit each 20 ms rings on: a 40 ms late hit (a busy machine) falls to 1/e of it,
        # 100 ms without a sound to e^-2.5.
        quiet = np.flatnonzero(levels[1:] < 0.2 * np.median(levels))
        assert quiet.size == 0, f"silent {(quiet[0] + 1) * 5} ms after the change"
        last = played[-int(0.04 * cap.rate) :]
        # Hits overlap here (a new one each 20 ms): nearer the new pitch than the old is enough.
        assert dominant_frequency(last, cap.rate) > (low + high) / 2

    without_xrun(rig.daemon, cap, switch)
    assert pitch_of_a_hit(rig) == pytest.approx(high, rel=0.03)
    assert "program 7: kit 'high'" in rig.daemon.log()


def test_programs_by_place_unknown_broken_and_bank_select(rig: Rig) -> None:
    mid = expected_frequency(0.5, 0)
    rig.midi.send([0xB9, 0, 1])  # bank select, coarse and fine: ignored, counted
    rig.midi.send([0xB9, 32, 0])
    rig.midi.send([0xC9, 2])  # no kit says 2: the third kit in name order
    time.sleep(0.5)
    assert pitch_of_a_hit(rig) == pytest.approx(mid, rel=0.03)
    rig.midi.send([0xC9, 100])  # no kit
    time.sleep(0.3)  # changes that come while one loads are folded into the latest
    rig.midi.send([0xC9, 3])  # a broken kit
    time.sleep(0.5)
    assert pitch_of_a_hit(rig) == pytest.approx(mid, rel=0.03)  # the kit before plays on
    status = rig.daemon.osc.status()
    assert status["kit"] == "mid"
    assert status["midi_bank_selects"] == 2
    assert status["dropped.midi.program_unmapped"] == 1
    assert status["dropped.midi.program_kit_broken"] == 1
    assert "dropped.midi.cc_unmapped" not in status
    log = rig.daemon.log()
    assert "program 100: no kit in" in log and "'mid' plays on" in log
    assert "d-broken.toml" in log and rig.daemon.proc.poll() is None


def test_kit_list_replies_with_the_folders_kits_and_programs(rig: Rig) -> None:
    osc = rig.daemon.osc
    osc.drain()
    osc.send("/dkvae/kit/list")
    entries: list[tuple[object, object, str]] = []
    while True:
        message = osc.receive(timeout=5.0)
        if message.address == "/dkvae/kit/list/end":
            assert message.params == [len(entries)]
            break
        assert message.address == "/dkvae/kit/entry", message.params
        entries.append((message.params[0], message.params[1], Path(message.params[2]).name))
    assert entries == [
        (0, "low", "a-low.toml"),
        (7, "high", "b-high.toml"),
        (2, "mid", "c-mid.toml"),
        (3, "d-broken", "d-broken.toml"),
    ]
