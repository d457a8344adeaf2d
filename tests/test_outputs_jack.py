"""Output pairs on a real JACK server (--outputs): each hit plays on its own pair and on the
main pair, which carries the whole mix, and on no other pair."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from harness.live import Capture, Daemon, dominant_frequency, without_xrun
from harness.synth_models import CLASSES, expected_frequency

from dkvae_live.kit import Kit, load_kit, save_kit
from dkvae_live.pads import default_latent

pytestmark = pytest.mark.jack

PEAK = 0.8 * 0.5  # the sine model's amplitude at the daemon's default master gain
KICK, SNARE, TOM = 36, 38, 45  # General MIDI: classes 0, 1 and 3 of the sine model


def hits(daemon: Daemon, capture: Capture, note: int) -> list[np.ndarray]:
    """One hit of `note` at full velocity, as each port of `capture` recorded it: the same
    window of frames from each, from the JACK cycle the trigger was sent in."""
    daemon.osc.send("/dkvae/stop")  # nothing rings into the window
    time.sleep(0.1)
    start = capture.trigger_frame()
    daemon.osc.send("/dkvae/trigger", note, 127)
    length = int(0.25 * capture.rate)
    return [capture.segment(start, length, port) for port in range(len(capture.buffers))]


def frequency(audio: np.ndarray, rate: int) -> float:
    onset = int(np.flatnonzero(np.abs(audio) > 1e-3)[0])
    return dominant_frequency(audio[onset : onset + 4096], rate)


def test_per_class_outputs_play_a_kick_on_the_kick_pair_and_the_main_pair_only(
    jack: None, sine_model: Path, gm_kit: Path
) -> None:
    daemon = Daemon(sine_model, "--kit", str(gm_kit), "--outputs", "per-class")
    try:
        daemon.wait_ready()
        ports = daemon.osc.status()["output_ports"].split(", ")
        capture = Capture(
            daemon.port_pattern("kick_1"),
            seconds=30.0,
            also=(daemon.port_pattern("snare_1"), daemon.audio_port_pattern),
        )
        try:
            capture.wait_until(1)
            time.sleep(0.1)  # the daemon hears of the connections from JACK's notifications
            kick = without_xrun(daemon, capture, lambda: hits(daemon, capture, KICK))
            snare = without_xrun(daemon, capture, lambda: hits(daemon, capture, SNARE))
        finally:
            capture.close()
    finally:
        daemon.stop()
    names = ("out", *CLASSES)  # the main pair, then one per class of the model
    assert ports == [f"{daemon.client_name}:{name}_{i}" for name in names for i in (1, 2)]
    rate = capture.rate
    kick_pair, snare_pair, main = kick
    assert np.max(np.abs(kick_pair)) == pytest.approx(PEAK, rel=0.05)
    want = expected_frequency(default_latent(KICK, 8)[0], class_index=0)
    assert frequency(kick_pair, rate) == pytest.approx(want, rel=0.02)
    assert not np.any(snare_pair)  # not a sample of the kick
    np.testing.assert_array_equal(main, kick_pair)  # the whole mix, which is the kick alone
    kick_pair, snare_pair, main = snare
    assert not np.any(kick_pair)
    want = expected_frequency(default_latent(SNARE, 8)[0], class_index=1)
    assert frequency(snare_pair, rate) == pytest.approx(want, rel=0.02)
    np.testing.assert_array_equal(main, snare_pair)


def test_per_pad_outputs_group_the_pads_the_kit_names_and_leave_the_rest_on_the_main_pair(
    jack: None, sine_model: Path, gm_kit: Path, tmp_path: Path
) -> None:
    kit = load_kit(gm_kit, CLASSES, 8)
    pads = {
        note: replace(pad, output="toms") if pad.class_name == "tom" else pad
        for note, pad in kit.pads.items()
    }
    path = tmp_path / "toms.toml"
    save_kit(Kit("toms apart", pads), path)
    daemon = Daemon(sine_model, "--kit", str(path), "--outputs", "per-pad")
    try:
        daemon.wait_ready()
        ports = daemon.osc.status()["output_ports"].split(", ")
        capture = Capture(
            daemon.port_pattern("toms_1"), seconds=30.0, also=(daemon.audio_port_pattern,)
        )
        try:
            capture.wait_until(1)
            time.sleep(0.1)
            tom = without_xrun(daemon, capture, lambda: hits(daemon, capture, TOM))
            kick = without_xrun(daemon, capture, lambda: hits(daemon, capture, KICK))
        finally:
            capture.close()
    finally:
        daemon.stop()
    assert ports == [f"{daemon.client_name}:{name}_{i}" for name in ("out", "toms") for i in (1, 2)]
    toms_pair, main = tom
    assert np.max(np.abs(toms_pair)) == pytest.approx(PEAK, rel=0.05)
    np.testing.assert_array_equal(main, toms_pair)
    toms_pair, main = kick
    assert not np.any(toms_pair)  # a pad without `output`: the main pair alone
    assert np.max(np.abs(main)) == pytest.approx(PEAK, rel=0.05)


def test_a_pad_put_on_a_pair_over_osc_gets_its_ports_plays_there_and_is_saved(
    jack: None, sine_model: Path, gm_kit: Path, tmp_path: Path
) -> None:
    (tmp_path / "kits").mkdir()
    daemon = Daemon(
        sine_model, "--kit", str(gm_kit), "--kit-dir", str(tmp_path / "kits"),
        "--outputs", "per-pad",
    )  # fmt: skip
    try:
        daemon.wait_ready()
        before = daemon.osc.status()["output_ports"].split(", ")
        daemon.osc.send("/dkvae/pad/output", KICK, "kicks")
        daemon.osc.send("/dkvae/pad/output", SNARE, "out")  # the main pair's own name
        refused = daemon.osc.receive()
        deadline = time.monotonic() + 5
        while "kicks" not in daemon.osc.status()["output_ports"]:
            assert time.monotonic() < deadline, "no kicks pair"
            time.sleep(0.05)
        after = daemon.osc.status()["output_ports"].split(", ")
        capture = Capture(
            daemon.port_pattern("kicks_1"), seconds=30.0, also=(daemon.audio_port_pattern,)
        )
        try:
            capture.wait_until(1)
            time.sleep(0.2)  # the kick's sound published again, on its pair
            kick = without_xrun(daemon, capture, lambda: hits(daemon, capture, KICK))
        finally:
            capture.close()
        daemon.osc.send("/dkvae/kit/save", "routed")
        saved = Path(daemon.osc.reply("/dkvae/kit/saved")[0])
    finally:
        daemon.stop()
    assert before == [f"{daemon.client_name}:out_{i}" for i in (1, 2)]
    assert after == before + [f"{daemon.client_name}:kicks_{i}" for i in (1, 2)]
    assert refused.address == "/dkvae/error"
    assert refused.params[0] == "/dkvae/pad/output" and "main pair" in refused.params[1]
    kicks_pair, main = kick
    assert np.max(np.abs(kicks_pair)) == pytest.approx(PEAK, rel=0.05)
    np.testing.assert_array_equal(main, kicks_pair)
    pads = load_kit(saved, CLASSES, 8).pads
    assert (pads[KICK].output, pads[SNARE].output) == ("kicks", "")
