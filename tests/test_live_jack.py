"""End to end on a real JACK server: MIDI and OSC in, captured audio out."""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from harness.live import Capture, Daemon, MidiSender, dominant_frequency, without_xrun
from harness.synth_models import expected_frequency
from test_latent_change_jack import GAP_S

from dkvae_live.audio import JackOutput
from dkvae_live.mixer import FADE_SECONDS, Mixer
from dkvae_live.pad_sound import PadSound
from dkvae_live.pads import default_latent

pytestmark = pytest.mark.jack

MASTER_GAIN = 0.5  # the daemon's default
AMPLITUDE = 0.8  # the sine model's


def test_midi_note_plays_the_pads_sound_at_the_velocitys_level(
    daemon: Daemon, capture: Capture
) -> None:
    midi = MidiSender(daemon.midi_port)
    try:
        loud = without_xrun(daemon, capture, lambda: capture.hit(lambda: midi.note_on(38, 127)))
        time.sleep(0.3)
        soft = without_xrun(daemon, capture, lambda: capture.hit(lambda: midi.note_on(38, 64)))
    finally:
        midi.close()
    z0 = default_latent(38, 8)[0]
    want = expected_frequency(z0, class_index=1)  # GM 38 is a snare: class 1
    assert dominant_frequency(loud[:4096], capture.rate) == pytest.approx(want, rel=0.02)
    assert np.max(np.abs(loud)) == pytest.approx(AMPLITUDE * MASTER_GAIN, rel=0.05)
    assert np.max(np.abs(soft)) / np.max(np.abs(loud)) == pytest.approx(64 / 127, rel=0.05)


def test_a_midi_note_plays_in_the_jack_cycle_it_arrives_and_only_on_its_channel(
    jack: None, sine_model: Path, gm_kit: Path
) -> None:
    """The MIDI input is a port of the daemon's own JACK client, read by its C callback: the
    hit starts in the same period as the MIDI event, not in the next one."""
    daemon = Daemon(sine_model, "--kit", str(gm_kit), "--midi-channel", "10")
    try:
        daemon.wait_ready()
        capture = Capture(daemon.audio_port_pattern)
        midi = MidiSender(daemon.midi_port)
        try:
            capture.wait_until(1)
            period = int(capture.client.blocksize)

            def one_note() -> int:
                daemon.osc.send("/dkvae/stop")  # nothing rings on: the onset is this hit's
                time.sleep(0.1)
                start = capture.trigger_frame()
                midi.note_on(38, 120, channel=9)  # channel 10
                onset = capture.onset(start, int(0.1 * capture.rate))
                assert onset is not None, "the note did not play"
                assert capture.first_frame is not None
                time.sleep(0.3)
                return capture.first_frame + onset - midi.sent_frames[-1]

            delays = [without_xrun(daemon, capture, one_note) for _ in range(10)]
            notes_sent = len(midi.sent_frames)
            daemon.osc.send("/dkvae/stop")
            time.sleep(0.2)
            start = capture.trigger_frame()
            midi.note_on(38, 120, channel=0)  # another channel: not for us
            assert capture.onset(start, int(0.2 * capture.rate)) is None
        finally:
            midi.close()
            capture.close()
        status = daemon.osc.status()
    finally:
        daemon.stop()
    # Through a client of its own (rtmidi) every onset came one period later, or more. A cycle
    # in which JACK woke us late puts one there too: asking 8 of 10 failed 2 of 5 runs with
    # two busy loops beside the test on this 2-core machine (before `without_xrun`). A note
    # sent again after an xrun may have been lost in JACK: received are 10 or more.
    assert sum(0 <= d < period for d in delays) >= 5, f"onsets {delays} frames after the event"
    assert max(delays) < 4 * period
    assert 10 <= status["notes_received"] <= notes_sent  # not the other channel's
    assert status["notes_played"] == status["notes_received"]
    assert status["dropped"] == 0


def test_all_notes_off_over_jack_midi_stops_the_voices_in_the_cycle_it_arrives(
    daemon: Daemon, capture: Capture
) -> None:
    """CC 123 (all notes off) and 120 (all sound off) are played by the audio callback, as a
    note-on is: the voices fade out from the cycle the controller arrives in, not a period or
    more later after a round trip through Python."""
    fade = int(FADE_SECONDS * capture.rate)
    midi = MidiSender(daemon.midi_port)
    try:

        def rings_on_after(controller: int) -> int:
            """Frames the sound lasted after the controller's frame."""
            capture.hit(lambda: midi.note_on(38, 120), seconds=0.01)
            midi.send([0xB9, controller, 0])
            midi.flush()
            time.sleep(0.01)
            assert capture.first_frame is not None
            sent = midi.sent_frames[-1] - capture.first_frame
            tail = capture.segment(sent, fade + 4 * int(capture.client.blocksize))
            loud = np.flatnonzero(np.abs(tail) > 1e-4)
            return int(loud[-1]) + 1 if loud.size else 0

        lasted = [
            without_xrun(daemon, capture, functools.partial(rings_on_after, controller))
            for controller in (123, 120)
        ]
    finally:
        midi.close()
    assert all(0 < n <= fade for n in lasted), f"rang {lasted} frames on; the fade is {fade}"


def test_osc_latent_change_is_heard_on_the_next_hit_15_ms_later(
    daemon: Daemon, capture: Capture
) -> None:
    """At issue 21's bound for CI (tests/test_latent_change_jack.py's): its 5 ms target is the
    benchmark's (bench/latent_e2e.py), which this machine misses in its noisy hours."""
    osc = daemon.osc
    latent = [0.0] * 8
    osc.send("/dkvae/pad/latent", 36, *latent)
    time.sleep(0.2)
    before = capture.hit(lambda: osc.send("/dkvae/trigger", 36, 127))
    time.sleep(0.3)
    latent[0] = 1.0  # one octave up

    def change_then_hit() -> None:
        osc.send("/dkvae/pad/latent", 36, *latent)
        time.sleep(GAP_S)
        osc.send("/dkvae/trigger", 36, 127)

    after = capture.hit(change_then_hit)
    f_before = dominant_frequency(before[:4096], capture.rate)
    f_after = dominant_frequency(after[:4096], capture.rate)
    assert f_before == pytest.approx(expected_frequency(0.0, 0), rel=0.02)
    assert f_after == pytest.approx(expected_frequency(1.0, 0), rel=0.02)


def test_one_dimension_and_class_over_osc(daemon: Daemon, capture: Capture) -> None:
    osc = daemon.osc
    osc.send("/dkvae/pad/latent", 36, *([0.0] * 8))
    osc.send("/dkvae/pad/dim", 36, 0, -1.0)
    osc.send("/dkvae/pad/class", 36, "tom")  # class index 3: frequency x4
    time.sleep(0.2)
    sound = capture.hit(lambda: osc.send("/dkvae/trigger", 36, 100))
    want = expected_frequency(-1.0, 3)
    assert dominant_frequency(sound[:4096], capture.rate) == pytest.approx(want, rel=0.02)
    osc.send("/dkvae/pad/get", 36)
    reply = osc.receive()
    assert reply.address == "/dkvae/pad"
    assert reply.params[:2] == [36, "tom"]
    assert reply.params[4:] == pytest.approx([-1.0] + [0.0] * 7)


def test_burst_of_500_back_to_back_midi_notes_loses_none(daemon: Daemon, capture: Capture) -> None:
    midi = MidiSender(daemon.midi_port)
    try:
        for _ in range(500):
            midi.note_on(42, 100)
    finally:
        time.sleep(0.5)
        midi.close()
    status = daemon.osc.status()
    assert status["notes_received"] == 500
    assert status["notes_played"] == 500
    assert status["dropped"] == 0


def test_bad_input_is_counted_and_the_daemon_keeps_playing(
    daemon: Daemon, capture: Capture
) -> None:
    osc = daemon.osc
    osc.send_raw(b"\x00garbage that is not OSC")
    osc.send_raw(b"/dkvae/trigger\x00\x00,i\x00\x00")  # type tag without its argument
    osc.send("/dkvae/trigger", "kick")  # a string where a note number goes
    osc.send("/dkvae/trigger", 36, 100, 5)  # too many arguments
    osc.send("/dkvae/trigger", 200)  # note out of range
    osc.send("/dkvae/trigger", 60)  # a note with no pad: counted as over MIDI
    osc.send("/dkvae/pad/latent", 36, *([float("nan")] * 8))
    osc.send("/dkvae/pad/latent", 36, 1.0, 2.0)  # wrong length
    osc.send("/dkvae/pad/class", 36, "cowbell-xl")
    osc.send("/dkvae/no/such/address", 1)
    midi = MidiSender(daemon.midi_port)
    try:
        midi.send([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7])  # SysEx
        midi.send([0x99, 200 - 128, 100])  # note 72: no pad there
    finally:
        time.sleep(0.3)
        midi.close()
    osc.drain()
    status = osc.status()
    assert status["dropped.osc.malformed"] == 2
    assert status["dropped.osc.invalid"] == 6
    assert status["dropped.osc.unknown_address"] == 1
    assert status["dropped.midi.sysex"] == 1
    assert status["dropped.note.unmapped"] == 2  # one over OSC, one over MIDI
    assert daemon.proc.poll() is None
    sound = capture.hit(lambda: osc.send("/dkvae/trigger", 36, 127))
    assert np.all(np.isfinite(sound)) and np.max(np.abs(sound)) > 0.1


def test_sigterm_stops_within_a_second(daemon: Daemon) -> None:
    start = time.monotonic()
    daemon.proc.terminate()
    code = daemon.proc.wait(timeout=5)
    assert time.monotonic() - start < 1.0
    assert code == 0
    assert "stopping" in daemon.log()


def test_the_jack_audio_thread_plays_on_while_python_holds_the_gil(jack: None) -> None:
    """The process callback is C: a Python thread that keeps the GIL for 0.3 s (a long
    garbage collection, a flood of OSC) does not stop the audio or a hit queued before it."""
    mixer = Mixer(4, 0.5)
    output = JackOutput(mixer, f"dkvae-test-gil-{os.getpid()}", None, None)
    mixer.publish(PadSound.from_audio(36, (np.full((1, 48000), 0.1, np.float32),), 1.0, 1.0, 0, 4))
    output.start()
    interval = sys.getswitchinterval()
    try:
        time.sleep(0.2)
        sys.setswitchinterval(5.0)  # no other Python thread may take the GIL from us now
        before = mixer.cycles
        mixer.note_on(36, 100)
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:
            pass
        blocks, played = mixer.cycles - before, mixer.notes_played
    finally:
        sys.setswitchinterval(interval)
        output.close()
    assert blocks >= 0.8 * 0.3 / output.latency
    assert played == 1
