"""What makes it an instrument, on a real JACK server: kits, choke, velocity timbre, variation,
CC learn, encode, hot model swap, kit reload, offline render against a live take."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import mido
import numpy as np
import onnxruntime as ort
import pytest
import soundfile
from harness.live import Capture, Daemon, MidiSender, dominant_frequency, without_xrun
from harness.synth_models import CLASSES, expected_frequency, linear_encoder, sine_decoder

from dkvae_live.kit import Kit, load_kit, save_kit
from dkvae_live.kit_export import EXPORT_JSON
from dkvae_live.latent_fit import fit_latent
from dkvae_live.model import Decoder, Encoder, read_sound
from dkvae_live.offline import midi_notes, render_midi
from dkvae_live.pads import default_pads

pytestmark = pytest.mark.jack
LONG = 3.6  # z[1] for a decay of about 1 s
SHORT = -2.0  # z[1] for a decay of 20 ms
SAVED = "/dkvae/kit/saved"


@dataclass
class Rig:
    daemon: Daemon
    capture: Capture
    root: Path
    kit_path: Path

    def pad(self, note: int) -> list[object]:
        osc = self.daemon.osc
        osc.drain()
        osc.send("/dkvae/pad/get", note)
        msg = osc.receive()
        assert msg.address == "/dkvae/pad", msg.params
        return list(msg.params)

    def reply(self, address: str) -> list[Any]:
        """The next reply with this address (skipping others); fails on /dkvae/error."""
        return self.daemon.osc.reply(address)


def start_kit() -> Kit:
    pads = default_pads(CLASSES, 8)
    for note in pads:
        pads[note] = replace(pads[note], latent=(0.0, SHORT) + (0.0,) * 6)
    return Kit("rig", pads)


@pytest.fixture
def rig(jack: None, tmp_path: Path) -> Iterator[Rig]:
    model = tmp_path / "model"
    sine_decoder(model / "decoder.onnx")
    linear_encoder(model / "encoder.onnx")
    (tmp_path / "sounds").mkdir()
    kit_path = tmp_path / "kits" / "rig.toml"
    kit_path.parent.mkdir()
    save_kit(start_kit(), kit_path)
    daemon = Daemon(
        model,
        "--kit",
        str(kit_path),
        "--allow-dir",
        str(tmp_path / "sounds"),
        "--allow-dir",
        str(tmp_path / "models"),
    )
    try:
        daemon.wait_ready()
        capture = Capture(daemon.audio_port_pattern)
        capture.wait_until(1)
        yield Rig(daemon, capture, tmp_path, kit_path)
        capture.close()
    finally:
        daemon.stop()


def rms_windows(audio: np.ndarray, window: int) -> np.ndarray:
    usable = audio[: audio.shape[0] // window * window]
    return np.sqrt(np.mean(usable.reshape(-1, window) ** 2, axis=1))


def test_a_closed_hat_chokes_the_open_hat_within_the_fade(rig: Rig) -> None:
    """The open hat fades out over the 5 ms fade from where the choke reaches the mixer, not
    cut and not longer, and the choke reaches it within a period and 10 ms of being sent.

    The fade is timed from where the open hat starts to fall, so how long the OSC message
    took (the VM can wake the daemon's OSC thread late) counts only in the second bound."""
    osc, cap = rig.daemon.osc, rig.capture
    osc.send("/dkvae/pad/latent", 46, 0.0, LONG, *([0.0] * 6))  # a long open hat, 600 Hz
    osc.send("/dkvae/pad/gain", 42, 0.0)  # a silent closed hat: only its choke is heard
    time.sleep(0.3)
    window = int(0.002 * cap.rate)  # longer than one period of the hat's sine
    fade = int(0.005 * cap.rate)

    def choke() -> None:
        start = cap.trigger_frame()
        osc.send("/dkvae/trigger", 46, 127)
        time.sleep(0.2)
        choke_sent = cap.trigger_frame()
        osc.send("/dkvae/trigger", 42, 127)
        audio = cap.segment(start, int(0.6 * cap.rate))
        before, after = audio[: choke_sent - start], audio[choke_sent - start :]
        ringing = np.max(np.abs(before[-window:]))
        assert ringing > 0.2  # the open hat rang
        peaks = np.max(np.abs(after[: after.size // window * window].reshape(-1, window)), 1)
        # Over 2 ms the open hat itself decays by 0.2 %: a fall of 10 % is the fade.
        falling = np.flatnonzero(peaks < 0.9 * ringing)
        assert falling.size, "the open hat was not choked"
        fade_from = int(falling[0]) * window
        loud = np.flatnonzero(np.abs(after) >= 1e-4)
        silent_from = int(loud[-1]) + 1 if loud.size else 0
        fade_took = silent_from - fade_from  # both ends are found to within a window
        assert fade - window <= fade_took <= fade + 2 * window, (fade_from, silent_from)
        assert fade_from <= int(cap.client.blocksize) + int(0.010 * cap.rate) + 2 * window
        # Faded, not cut: no step bigger than the sine's own (0.026 at 600 Hz and 0.33).
        sine_step = np.max(np.abs(np.diff(before[-5 * window :])))
        assert np.max(np.abs(np.diff(after))) < 1.2 * sine_step

    without_xrun(rig.daemon, cap, choke)


def test_velocity_moves_timbre_in_the_set_direction(rig: Rig) -> None:
    osc, cap = rig.daemon.osc, rig.capture
    osc.send("/dkvae/pad/timbre_direction", 36, 1.0, *([0.0] * 7))  # dim 0 is pitch
    osc.send("/dkvae/pad/timbre_amount", 36, 0.5)
    osc.send("/dkvae/pad/velocity_curve", 36, 0.1)  # keep soft hits loud enough to measure
    time.sleep(0.3)
    pitches = {}
    for velocity in (1, 64, 127):
        sound = cap.hit(partial(osc.send, "/dkvae/trigger", 36, velocity), 0.04)
        pitches[velocity] = dominant_frequency(sound, cap.rate)
        time.sleep(0.15)
    assert pitches[1] == pytest.approx(expected_frequency(-0.5, 0), rel=0.03)
    assert pitches[64] == pytest.approx(expected_frequency(0.0, 0), rel=0.03)
    assert pitches[127] == pytest.approx(expected_frequency(0.5, 0), rel=0.03)


def test_variation_makes_every_hit_different_and_close_to_the_pad(rig: Rig) -> None:
    osc, cap = rig.daemon.osc, rig.capture
    osc.send("/dkvae/pad/variation", 38, 0.1)
    time.sleep(0.3)
    hits = []
    for _ in range(12):
        hits.append(cap.hit(lambda: osc.send("/dkvae/trigger", 38, 127), 0.04))
        osc.send("/dkvae/stop")  # nothing rings under the next hit: equal variants, equal audio
        time.sleep(0.12)
    pitches = [dominant_frequency(h, cap.rate) for h in hits]
    centre = expected_frequency(0.0, 1)  # a snare: class 1
    for i in range(len(hits)):
        for j in range(i):
            # atol 1e-3 also caught different variants whose pitches lay within 0.03 %
            assert not np.allclose(hits[i], hits[j], atol=1e-5), f"hits {j} and {i} are the same"
    # z[0] moves by N(0, 0.1): pitch within 2**(+-0.4) of the pad's (4 standard deviations).
    assert all(centre * 2**-0.4 < p < centre * 2**0.4 for p in pitches)
    assert len({round(p) for p in pitches}) > 6


def test_cc_learn_maps_a_knob_to_a_latent_dimension_and_the_kit_keeps_it(rig: Rig) -> None:
    osc = rig.daemon.osc
    osc.send("/dkvae/pad/learn", 36, 2)
    time.sleep(0.1)
    midi = MidiSender(rig.daemon.midi_port)
    try:
        full_up = [0xB9, 21, 127]  # channel 10, CC 21
        assert heard(rig, lambda: midi.send(full_up), "/dkvae/pad/learned") == [36, 2, 21, 10]
        assert rig.pad(36)[4 + 2] == pytest.approx(3.0)

        def knob_down() -> None:
            midi.send([0xB9, 21, 0])
            time.sleep(0.1)
            assert rig.pad(36)[4 + 2] == pytest.approx(-3.0)

        without_xrun(rig.daemon, rig.capture, knob_down)
    finally:
        midi.close()
    osc.send("/dkvae/kit/save", "learned")
    saved = Path(rig.reply("/dkvae/kit/saved")[0])
    kit = load_kit(saved, CLASSES, 8)
    assert [(m.controller, m.note, m.dim, m.channel) for m in kit.cc] == [(21, 36, 2, 9)]


def test_encode_sets_the_pads_latent_to_its_fitted_latent_and_paths_are_confined(rig: Rig) -> None:
    osc = rig.daemon.osc
    rate = 44100
    t = np.arange(rate // 4) / rate
    wav = rig.root / "sounds" / "my snare.wav"
    soundfile.write(wav, (0.5 * np.sin(2 * np.pi * 330 * t) * np.exp(-t / 0.05)), rate)
    osc.send("/dkvae/pad/encode", 38, str(wav))
    got = rig.reply("/dkvae/pad")
    sound = read_sound(wav, rate, 22050)
    decoder = Decoder(rig.root / "model")
    # the daemon's own encoder session: a fit of 48 steps carries a 1e-7 difference in its start
    # (another session's rounding) to 1e-4
    encoded = Encoder(rig.root / "model" / "encoder.onnx", decoder.info).encode(sound[None])[0]
    session = ort.InferenceSession(str(rig.root / "model" / "encoder.onnx"))
    np.testing.assert_allclose(
        encoded, session.run(["z_mean"], {"audio": sound[None]})[0][0], atol=1e-4
    )
    want = fit_latent(decoder, sound, decoder.info.class_index(got[1]), encoded)
    assert got[4:] == pytest.approx(want.tolist(), abs=1e-4)
    for outside in ("/etc/hostname", str(rig.root / "kits" / ".." / ".." / "x.wav")):
        osc.send("/dkvae/pad/encode", 38, outside)
        error = osc.receive()
        assert error.address == "/dkvae/error" and "outside the folders" in error.params[1]


def test_a_model_swap_plays_the_new_model_and_a_bad_model_changes_nothing(rig: Rig) -> None:
    osc, cap = rig.daemon.osc, rig.capture
    models = rig.root / "models"
    sine_decoder(models / "octave" / "decoder.onnx", base_hz=400.0)
    (models / "broken.onnx").write_bytes(b"not a model at all")
    osc.send("/dkvae/pad/latent", 36, 0.0, LONG, *([0.0] * 6))
    time.sleep(0.3)
    start = cap.trigger_frame()
    osc.send("/dkvae/trigger", 36, 127)
    time.sleep(0.05)
    osc.send("/dkvae/model/load", str(models / "octave"))
    assert rig.reply("/dkvae/model/loaded")[0] == "sine-test"
    ringing = cap.segment(start, int(0.6 * cap.rate))
    assert np.max(np.abs(ringing)) > 0.1, (np.max(np.abs(ringing)), rig.daemon.log()[-3000:])
    onset = int(np.flatnonzero(np.abs(ringing) > 1e-3)[0])
    # The sine model's sounds last 0.5 s: look at the first 0.4 s, across the swap.
    envelope = rms_windows(ringing[onset : onset + int(0.4 * cap.rate)], int(0.005 * cap.rate))
    assert envelope[len(envelope) // 2] > 0.1 * envelope[0]  # still ringing after the swap
    time.sleep(0.2)
    new = cap.hit(lambda: osc.send("/dkvae/trigger", 38, 127), 0.04)
    assert dominant_frequency(new, cap.rate) == pytest.approx(
        expected_frequency(0, 1, 400), rel=0.03
    )
    osc.send("/dkvae/model/load", str(models / "broken.onnx"))
    error = osc.receive(timeout=5.0)
    assert error.address == "/dkvae/error" and "not a loadable ONNX model" in error.params[1]
    again = cap.hit(lambda: osc.send("/dkvae/trigger", 38, 127), 0.04)
    assert dominant_frequency(again, cap.rate) == pytest.approx(
        expected_frequency(0, 1, 400), rel=0.03
    )


def test_a_model_swap_leaves_no_audible_gap(rig: Rig) -> None:
    """A voice rings on, unbroken, while the model under it is swapped.

    The swap is judged in a window with no xrun (`without_xrun`): any late client leaves a gap
    in the recording (bench/swap.py compares swaps with idle windows). A swap that stalls the
    audio makes an xrun every time and fails, one that cuts the ringing voice does so in the
    clean window too."""
    osc, cap = rig.daemon.osc, rig.capture
    osc.send("/dkvae/pad/latent", 36, 0.0, LONG, *([0.0] * 6))
    time.sleep(0.3)
    swaps = itertools.count(1)

    def swap_under_a_ringing_voice() -> None:
        swap = next(swaps)
        model = rig.root / "models" / f"swap-{swap}"
        sine_decoder(model / "decoder.onnx", base_hz=400.0 + 50.0 * swap)
        start = cap.trigger_frame()
        osc.send("/dkvae/trigger", 36, 127)
        time.sleep(0.05)
        osc.send("/dkvae/model/load", str(model))
        rig.reply("/dkvae/model/loaded")
        ringing = cap.segment(start, int(0.6 * cap.rate))
        onset = int(np.flatnonzero(np.abs(ringing) > 1e-3)[0])
        window = int(0.005 * cap.rate)
        envelope = rms_windows(ringing[onset : onset + int(0.4 * cap.rate)], window)
        dips = np.flatnonzero(envelope[1:] <= 0.8 * envelope[:-1])
        assert dips.size == 0, f"dropout at {dips * 5} ms after the onset, swap {swap}"

    without_xrun(rig.daemon, cap, swap_under_a_ringing_voice)


def test_the_kit_reloads_when_its_file_changes_and_a_broken_edit_is_ignored(rig: Rig) -> None:
    kit = load_kit(rig.kit_path, CLASSES, 8)
    pads = dict(kit.pads)
    pads[36] = replace(pads[36], latent=(1.5,) * 8)
    save_kit(Kit("edited", pads), rig.kit_path)
    deadline = time.monotonic() + 3
    while rig.pad(36)[4] != pytest.approx(1.5):
        assert time.monotonic() < deadline, "the kit was not reloaded"
        time.sleep(0.1)
    rig.kit_path.write_text("[[pad]]\nnote = 36\nclass = 'kick'\n")  # broken: no latent
    time.sleep(1.5)
    assert rig.pad(36)[4] == pytest.approx(1.5)
    assert "the old one keeps playing" in rig.daemon.log()
    assert rig.daemon.proc.poll() is None


def stop_all_threads(pid: int, timeout: float = 2.0) -> None:
    """SIGSTOP `pid` and wait until every one of its threads has stopped (a thread in a system
    call, fsync say, stops when the call returns)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
            except OSError:  # a thread that ended meanwhile
                continue
        if all(state in "tT" for state in states):
            return
        assert time.monotonic() < deadline, f"threads not stopped: {states}"


def files_open_for_writing(pid: int, folder: Path) -> list[Path]:
    """The regular files in `folder` that `pid` holds open for writing."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = Path(os.readlink(fd))
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:  # closed meanwhile
            continue
        flags = int(info.split("flags:", 1)[1].split()[0], 8)
        if target.parent == folder and flags & os.O_ACCMODE != os.O_RDONLY and target.is_file():
            found.append(target)
    return found


def test_a_daemon_killed_in_the_middle_of_a_save_leaves_the_kit_saved_before(rig: Rig) -> None:
    """The daemon is stopped again and again while it saves, until it is caught holding the
    save's file open for writing (the save under way, not done), and killed there. The kit
    file must then be the kit saved before, byte for byte: a save that wrote into the kit
    file itself would have cut it short or replaced it by then."""
    osc, pid = rig.daemon.osc, rig.daemon.proc.pid
    folder = rig.kit_path.parent.resolve()
    saved = rig.kit_path.read_bytes()
    caught: list[Path] = []
    for attempt in range(40):
        # A latent unlike the one on disk, so this save's kit differs from the one saved.
        osc.send("/dkvae/pad/latent", 36, *([1.0 + attempt % 2] * 8))
        osc.drain()
        osc.send("/dkvae/kit/save")
        deadline = time.monotonic() + 10
        while not caught:
            assert time.monotonic() < deadline, "the save neither finished nor was seen"
            stop_all_threads(pid)
            caught = files_open_for_writing(pid, folder)
            if caught:
                break  # stays stopped, in the middle of the save
            os.kill(pid, signal.SIGCONT)
            try:  # let it run a random while; the save's reply means it finished unseen
                if osc.receive(timeout=random.uniform(0.0002, 0.002)).address == SAVED:
                    break
            except TimeoutError:
                pass
        if caught:
            break
        saved = rig.kit_path.read_bytes()  # that save finished: the kit saved before, now
    assert caught, "in 40 saves the daemon was never caught saving"
    os.kill(pid, signal.SIGKILL)
    rig.daemon.proc.wait()
    assert rig.kit_path.read_bytes() == saved, f"caught writing {caught}"


def test_export_over_osc_writes_the_kit_as_it_plays_and_paths_are_confined(rig: Rig) -> None:
    osc = rig.daemon.osc
    osc.send("/dkvae/pad/latent", 38, 0.5, SHORT, *([0.0] * 6))
    assert rig.pad(38)[4] == pytest.approx(0.5)  # OSC is handled in order: the change is in
    osc.send("/dkvae/kit/export", "exported")
    out = Path(str(rig.reply("/dkvae/kit/exported")[0]))
    assert out == (rig.root / "kits" / "exported").resolve()
    record = json.loads((out / EXPORT_JSON).read_text())
    (snare,) = [p for p in record["pads"] if p["note"] == 38]
    assert snare["latents"][0][0] == pytest.approx([0.5, SHORT] + [0.0] * 6, abs=1e-6)
    wav, rate = soundfile.read(str(out / snare["files"][0][0]))
    assert rate == record["samplerate"] == 48000  # the daemon's rate (the JACK dummy's)
    assert dominant_frequency(wav, rate) == pytest.approx(expected_frequency(0.5, 1), rel=0.03)

    def refused(*args: object) -> str:
        osc.drain()
        osc.send("/dkvae/kit/export", *args)
        error = osc.receive()
        assert error.address == "/dkvae/error", error.params
        return str(error.params[1])

    assert "exists" in refused("exported")  # not without force
    osc.send("/dkvae/kit/export", "exported", 1)
    assert Path(str(rig.reply("/dkvae/kit/exported")[0])) == out
    (rig.root / "elsewhere").mkdir()
    (rig.root / "kits" / "link").symlink_to(rig.root / "elsewhere")
    for outside in ("/tmp/dkvae-export", "../../x", "link/kit", str(rig.root / "elsewhere")):
        assert "outside the folders" in refused(outside)
    assert not any((rig.root / "elsewhere").iterdir())
    assert rig.daemon.proc.poll() is None


def heard(rig: Rig, send: Callable[[], None], address: str) -> list[object]:
    """The daemon's reply (at `address`) to one MIDI message, from a window with no xrun."""

    def reply() -> list[object]:
        send()
        try:
            return rig.daemon.osc.reply(address, timeout=2.0)
        except TimeoutError:
            raise AssertionError(f"no {address} within 2 s") from None

    return without_xrun(rig.daemon, rig.capture, reply)


def clean_take(rig: Rig, send: Callable[[], None]) -> np.ndarray:
    """The 100 ms take of one trigger, from a window with no xrun: either kind of late cycle
    breaks a sample-exact comparison, whoever was late (the xrun tests hold the daemon to
    account for those)."""
    take = without_xrun(rig.daemon, rig.capture, lambda: rig.capture.hit(send, 0.1))
    time.sleep(1.0)  # the sound ends before the next one
    return take


def test_offline_render_sounds_like_the_live_take(rig: Rig) -> None:
    """The same four notes, played live over MIDI and rendered offline, match hit for hit.

    The notes lie 1.1 s apart, longer than any sound (1 s): no tail of one rings under the
    next, on either side, whatever the live timing."""
    midi_file = rig.root / "groove.mid"
    track = mido.MidiTrack()
    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks.append(track)
    for note, velocity in ((36, 127), (38, 90), (42, 60), (46, 127)):
        track.append(mido.Message("note_on", channel=9, note=note, velocity=velocity, time=0))
        track.append(mido.Message("note_off", channel=9, note=note, velocity=0, time=1056))
    mid.save(str(midi_file))
    notes = midi_notes(midi_file)
    decoder = Decoder(rig.root / "model")
    offline, skipped = render_midi(notes, decoder, load_kit(rig.kit_path, CLASSES, 8), 48000)
    assert skipped == 0
    midi = MidiSender(rig.daemon.midi_port)
    try:
        live = [
            clean_take(rig, partial(midi.note_on, note, velocity)) for _, note, velocity in notes
        ]
    finally:
        midi.close()
    left = offline[:, 0]
    for (seconds, _, _), take in zip(notes, live, strict=True):
        start = round(seconds * 48000)
        onset = start + int(np.flatnonzero(np.abs(left[start:]) > 1e-3)[0])
        rendered = left[onset : onset + take.shape[0]]
        assert np.max(np.abs(rendered - take)) < 1e-3 * max(1.0, np.max(np.abs(take)) * 10)
