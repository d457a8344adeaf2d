"""The parts of the real-time path, one at a time, without an audio server."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from harness.live import osc_datagram
from harness.synth_models import sine_decoder

from dkvae_live.midi_in import MidiInput
from dkvae_live.mixer import FADE_SECONDS, LIMIT, Mixer
from dkvae_live.model import RUN_BATCH, Decoder
from dkvae_live.osc_in import OscServer, check_arguments, parse_signature
from dkvae_live.pad_sound import PadSound
from dkvae_live.pads import PadBank, default_pads
from dkvae_live.renderer import (
    REJECTED_ULTRASONIC,
    SETTLE_SECONDS,
    ULTRASONIC_LIMIT_DBFS,
    VARIANTS,
    VELOCITY_LAYERS,
    RenderWorker,
    prepare_sound,
    ultrasonic_rms,
)
from dkvae_live.rt import release_free_memory, settle_heap

RATE = 48000
FADE = int(FADE_SECONDS * RATE)
LEVEL = 0.25  # every test sound: a few of them add up under the limiter's threshold


def sound(note: int, length: int = 1000, choke: int = 0, polyphony: int = 4) -> PadSound:
    return PadSound(note, (np.full((1, length), LEVEL, np.float32),), 1.0, 1.0, choke, polyphony)


def mixer_with(*sounds: PadSound, polyphony: int = 4) -> Mixer:
    mixer = Mixer(polyphony, master_gain=1.0)
    mixer.configure(RATE)
    for s in sounds:
        mixer.publish(s)
    return mixer


def render(mixer: Mixer, frames: int, block: int = 64) -> np.ndarray:
    out = np.zeros((frames, 2), np.float32)
    for start in range(0, frames, block):
        mixer.process(out[start : start + block])
    return out


@pytest.mark.parametrize("block", [1, 63, 64, 65, 128, 8192, 8193])
def test_a_voice_plays_its_sound_once_whatever_the_block_size(block: int) -> None:
    ramp = np.arange(1, 301, dtype=np.float32) / 1000
    mixer = mixer_with(PadSound(36, (ramp[None],), 1.0, 0.5, 0, 4))
    assert mixer.note_on(36, 127)
    out = render(mixer, 1000, block)
    assert np.array_equal(out[:300, 0], ramp)
    assert np.array_equal(out[:300, 1], 0.5 * ramp)
    assert not out[300:].any()
    assert mixer.voices_active == 0 and mixer.notes_played == 1


def test_voices_add_up_and_velocity_scales_linearly() -> None:
    mixer = mixer_with(sound(36), sound(38))
    mixer.note_on(36, 127)
    mixer.note_on(38, 127)
    assert render(mixer, 64)[0, 0] == pytest.approx(2 * LEVEL)
    mixer.stop_all()
    render(mixer, 1000)
    mixer.note_on(36, 64)
    assert render(mixer, 64)[0, 0] == pytest.approx(LEVEL * 64 / 127)


def test_stealing_fades_the_oldest_voice_instead_of_cutting_it() -> None:
    mixer = mixer_with(sound(36), sound(38), sound(40), polyphony=2)
    mixer.note_on(36, 127)
    render(mixer, 10)
    mixer.note_on(38, 127)
    mixer.note_on(40, 127)  # a third voice with polyphony 2: the kick must go
    out = render(mixer, 400)
    assert mixer.voices_stolen == 1
    assert out[0, 0] == pytest.approx(3 * LEVEL)  # the stolen voice starts its fade at full level
    steps = np.diff(out[: FADE + 1, 0])
    assert np.all(steps <= 1e-7) and np.max(np.abs(steps)) <= LEVEL / (FADE - 1) + 1e-6
    assert out[FADE + 5, 0] == pytest.approx(2 * LEVEL)  # then only the two new voices remain
    assert mixer.voices_active == 2


def test_a_closed_hat_chokes_the_open_hat_with_a_fade() -> None:
    mixer = mixer_with(sound(46, choke=1), sound(36), sound(42, choke=1), polyphony=8)
    mixer.note_on(46, 127)  # open hat
    mixer.note_on(36, 127)  # a kick, not in the group
    render(mixer, 100)
    mixer.note_on(42, 127)  # closed hat
    out = render(mixer, 400)
    assert out[0, 0] == pytest.approx(3 * LEVEL)
    assert out[FADE + 1, 0] == pytest.approx(2 * LEVEL)  # open hat gone; kick and closed hat


def test_per_pad_polyphony_fades_the_pads_oldest_hit() -> None:
    mixer = mixer_with(sound(38, polyphony=2), polyphony=8)
    for _ in range(3):
        mixer.note_on(38, 127)
    out = render(mixer, 400)
    assert out[FADE + 1, 0] == pytest.approx(2 * LEVEL)


def test_velocity_crossfades_the_two_nearest_layers_and_hits_walk_the_variants() -> None:
    layers = np.array([[0.1] * 200, [0.2] * 200, [0.3] * 200], np.float32)
    variants = (layers, layers + 0.05)
    mixer = mixer_with(PadSound(36, variants, 1.0, 1.0, 0, 4, velocity_curve=0.0))
    for velocity, variant in [(1, 0), (127, 1), (32, 0)]:  # curve 0: velocity moves timbre only
        mixer.note_on(36, velocity)
        out = render(mixer, 256)
        position = (velocity - 1) / 126 * 2
        low = int(position)
        high = min(low + 1, 2)
        expected = (1 - (position - low)) * layers[low, 0] + (position - low) * layers[high, 0]
        assert out[0, 0] == pytest.approx(expected + 0.05 * variant, abs=1e-6)
    assert list(mixer.hits[36:37]) == [3]


def test_a_replaced_sound_keeps_its_buffers_until_no_voice_plays_it() -> None:
    old = sound(36, length=5000)
    mixer = mixer_with(old)
    mixer.note_on(36, 127)
    render(mixer, 64)
    mixer.publish(sound(36, length=5000))  # the pad moves on while the old hit still rings
    ref = weakref.ref(old.variants[0])
    del old
    gc.collect()
    mixer.sweep()
    assert ref() is not None  # a voice still reads it
    out = render(mixer, 6000)
    assert out[5000 - 64 - 1, 0] == pytest.approx(LEVEL) and not out[5000 - 64 :].any()
    mixer.sweep()
    gc.collect()
    assert ref() is None


def test_a_full_event_queue_refuses_instead_of_waiting() -> None:
    mixer = mixer_with(sound(36))
    accepted = sum(mixer.note_on(36, 100) for _ in range(5000))
    assert 0 < accepted < 5000 and mixer.pending() == accepted
    render(mixer, 64)
    assert mixer.pending() == 0 and mixer.note_on(36, 100)


def test_hits_on_a_note_with_no_sound_are_counted() -> None:
    mixer = mixer_with(sound(36))
    mixer.note_on(40, 100)
    render(mixer, 64)
    assert mixer.notes_without_sound == 1 and mixer.notes_played == 0


def test_prepare_sound_rejects_nan_and_limits_peaks_and_trims_tails() -> None:
    assert prepare_sound(np.array([0.1, np.nan], np.float32), 44100, 44100) is None
    assert prepare_sound(np.array([0.1, np.inf], np.float32), 44100, 44100) is None
    loud = prepare_sound(np.full(1000, 3.0, np.float32), 44100, 44100)
    assert loud is not None and np.max(np.abs(loud)) <= 1.0
    # a 1 kHz burst with no DC in it (the DC blocker turns a DC step into a slow decay)
    burst = (np.hanning(500) * np.sin(2 * np.pi * 1000 * np.arange(500) / 44100)).astype(np.float32)
    tail = np.concatenate([burst, np.zeros(44100, np.float32)])
    trimmed = prepare_sound(tail, 44100, 48000)
    assert trimmed is not None and 500 < trimmed.shape[0] < 700
    assert abs(trimmed[-1]) < 0.01  # the cut end fades, no click


def tone(hz: float, rms_dbfs: float, rate: int = 44100, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sqrt(2) * 10 ** (rms_dbfs / 20) * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_ultrasonic_rms_measures_only_what_lies_above_20_khz() -> None:
    audible = tone(15000, -6) + tone(500, -6)
    sounds = np.stack([tone(21400, -20), audible, audible + tone(20500, -25), tone(21400, -60)])
    levels = 20 * np.log10(ultrasonic_rms(sounds, 44100) + 1e-12)
    assert levels[0] == pytest.approx(-20, abs=0.5)
    assert levels[1] < -100  # loud, and all of it audible
    assert levels[2] == pytest.approx(-25, abs=0.5)
    assert levels[3] < -100  # far under the limit: not looked at closely
    assert not ultrasonic_rms(np.stack([tone(15000, 0, rate=32000)]), 32000).any()


def test_a_render_with_loud_ultrasound_is_refused_and_the_pad_keeps_its_sound(
    tmp_path: Path,
) -> None:
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx"))  # 44.1 kHz
    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    published: list[PadSound] = []
    rejected: list[tuple[int, str]] = []
    worker = RenderWorker(
        decoder, pads, 48000, published.append, lambda n, r: rejected.append((n, r))
    )
    worker.render_now([36, 38])
    assert [s.note for s in published] == [36, 38] and not rejected
    # The sine's pitch is 200 Hz * 2**z0 * (class + 1): 21.4 kHz for the kick at z0 = log2(107).
    pads.update(36, latent=(float(np.log2(107.0)), 2.0) + (0.0,) * 6, class_name="kick")
    pads.update(38, latent=(2.0, 2.0) + (0.0,) * 6)  # 800 Hz: a sound
    worker.render_now([36, 38])
    assert rejected == [(36, REJECTED_ULTRASONIC)]
    assert [s.note for s in published] == [36, 38, 38]
    assert ULTRASONIC_LIMIT_DBFS <= -20  # the sine above is at about -3 dBFS RMS


def test_a_spectrogram_model_is_checked_at_load_without_iterating_its_phase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading runs the graph once per class (a broken one fails at load), but the
    phase iterations are the sound's quality: they wait for the renders, so the daemon
    answers from the start."""
    import onnx
    from harness.synth_models import contract_model
    from onnx import TensorProto, helper, numpy_helper

    import dkvae_live.model as model

    frames, bins = 33, 257
    graph = helper.make_graph(
        [
            helper.make_node("Shape", ["class_index"], ["n"]),
            helper.make_node("Concat", ["n", "tail"], ["shape"], axis=0),
            helper.make_node("Expand", ["spec", "shape"], ["log_magnitude"]),
            helper.make_node("ReduceSum", ["z"], ["unused"], keepdims=0),
        ],
        "spectrogram_decoder",
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("class_index", TensorProto.INT64, ["batch"]),
        ],
        [
            helper.make_tensor_value_info(
                "log_magnitude", TensorProto.FLOAT, ["batch", frames, bins]
            )
        ],
        [
            numpy_helper.from_array(np.full((frames, bins), -3.0, np.float32), "spec"),
            numpy_helper.from_array(np.array([frames, bins], np.int64), "tail"),
        ],
    )
    meta: dict[str, str | None] = {
        "dkvae.contract_version": "1",
        "dkvae.role": "decoder",
        "dkvae.model_kind": "test",
        "dkvae.output_kind": "log_magnitude",
        "dkvae.sample_rate": "16000",
        "dkvae.num_samples": "4096",
        "dkvae.latent_size": "8",
        "dkvae.class_names": '["kick", "snare"]',
        "dkvae.n_fft": "512",
        "dkvae.hop_length": "128",
    }
    path = tmp_path / "decoder.onnx"
    onnx.save(contract_model(graph, meta), str(path))
    iterations: list[int] = []
    real = model.invert

    def counting(
        magnitude: np.ndarray, n_fft: int, hop: int, length: int, count: int
    ) -> np.ndarray:
        iterations.append(count)
        return real(magnitude, n_fft, hop, length, count)

    monkeypatch.setattr(model, "invert", counting)
    decoder = Decoder(path)
    assert iterations == [0]  # the load-time check renders drafts
    audio = decoder.render(np.zeros((1, 8), np.float32), np.array([1]))
    assert iterations[-1] == model.PHASE_ITERATIONS > 0 and audio.shape == (1, 4096)
    decoder.render(np.zeros((1, 8), np.float32), np.array([1]), draft=True)
    assert iterations[-1] == 0


def test_the_render_worker_coalesces_a_burst_of_changes_latest_wins(tmp_path: Path) -> None:
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    published: dict[int, PadSound] = {}
    worker = RenderWorker(decoder, pads, 48000, lambda s: published.__setitem__(s.note, s))
    pads.on_change = worker.request
    worker.start()
    try:
        for i in range(200):
            pads.set_dim(36, 0, i / 200)
        pads.set_dim(36, 0, 1.0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if 36 in published and worker._rendered[36][0][1][0] == 1.0 and not worker._dirty:
                break
            time.sleep(0.01)
    finally:
        worker.stop()
    assert worker.renders < 50  # 201 changes, far fewer renders
    want = decoder.render(np.array([pads.get(36).latent], np.float32), [0])[0]  # type: ignore[union-attr]
    expected = prepare_sound(want, info.sample_rate, 48000)
    assert expected is not None
    assert np.allclose(published[36].variants[0][0], expected)


def test_the_render_worker_kept_busy_rests_a_quarter_of_its_work(tmp_path: Path) -> None:
    # A real-time thread that renders without end makes Linux stop every real-time thread
    # of its core (JACK's too) once they use 95 % of a second. Each decoder run here takes
    # 50 ms (without the GIL, as onnxruntime runs a big model) and changes arrive faster.
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    runs: list[tuple[float, float]] = []
    real_render = decoder.render

    def slow_render(z: np.ndarray, classes: np.ndarray, draft: bool = False) -> np.ndarray:
        start = time.monotonic()
        time.sleep(0.05)
        audio = real_render(z, classes, draft)
        runs.append((start, time.monotonic()))
        return audio

    decoder.render = slow_render  # type: ignore[method-assign]
    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    worker = RenderWorker(decoder, pads, 48000, lambda s: None)
    pads.on_change = worker.request
    worker.start()
    try:
        end = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < end:
            pads.set_dim(36 + i % 4, 0, (i % 100) / 100)
            i += 1
            time.sleep(0.001)
    finally:
        worker.stop()
    assert len(runs) > 10
    busy = sum(b - a for a, b in runs)
    assert busy / (runs[-1][1] - runs[0][0]) < 0.85


def test_a_pad_swept_renders_drafts_and_its_full_layers_once_it_is_still(tmp_path: Path) -> None:
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    pads.update(36, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5, variation=0.1)
    full = [VELOCITY_LAYERS] * VARIANTS  # layers per variant
    published: list[PadSound] = []
    worker = RenderWorker(decoder, pads, 48000, published.append)
    worker.render_now([36])
    pads.on_change = worker.request
    worker.start()
    try:
        sweep_end = time.monotonic() + 1.0
        i = 0
        while time.monotonic() < sweep_end:  # a knob swept for a second, 200 moves
            pads.set_dim(36, 0, (i % 100) / 100)
            i += 1
            time.sleep(0.005)
        swept = published[1:]
        decoded = worker.renders - sum(full)
        time.sleep(SETTLE_SECONDS + 0.3)
    finally:
        worker.stop()
    drafts = [s for s in swept if [v.shape[0] for v in s.variants] == [1]]
    assert len(drafts) >= 5
    assert len(swept) - len(drafts) <= 2  # the first move after a still pad is rendered in full
    assert decoded <= len(drafts) + 2 * sum(full)  # a draft decodes one latent, not 40
    after = [[v.shape[0] for v in s.variants] for s in published[1 + len(swept) :]]
    assert after[-1] == full  # still again: in full, once
    assert after.count(full) == 1


def test_two_settings_sent_together_are_not_a_sweep(tmp_path: Path) -> None:
    # A patch that sets a pad's timbre direction and then its amount, and hits it: the hit
    # must have its velocity layers, not a draft.
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    published: list[PadSound] = []
    worker = RenderWorker(decoder, pads, 48000, published.append)
    worker.render_now([36])
    time.sleep(SETTLE_SECONDS)  # start-up is long past
    pads.on_change = worker.request
    worker.start()
    try:
        pads.update(36, timbre_direction=(0.0, 1.0) + (0.0,) * 6)
        deadline = time.monotonic() + 2
        while len(published) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        pads.update(36, timbre_amount=0.5)  # rendered once more, right after the first
        while len(published) < 4 and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(SETTLE_SECONDS + 0.1)
    finally:
        worker.stop()
    layers = [[v.shape[0] for v in s.variants] for s in published]
    # at start, the direction (no layers yet), the amount: its first sound, then in full, once
    assert layers == [[1], [1], [1], [VELOCITY_LAYERS]]


def test_a_changed_pad_plays_its_first_sound_before_its_other_layers_are_decoded(
    tmp_path: Path,
) -> None:
    """A hit right after a change must not wait for every velocity layer (issue 21): the pad's
    own latent is decoded and published first, then the rest of the pad."""
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    real_render = decoder.render
    calls: list[tuple[int, bool, float]] = []

    def slow_render(z: np.ndarray, classes: np.ndarray, draft: bool = False) -> np.ndarray:
        time.sleep(0.03)  # a big model's decoder call
        calls.append((len(z), draft, time.monotonic()))
        return real_render(z, classes, draft)

    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    pads.update(36, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5)
    published: list[tuple[float, PadSound]] = []
    worker = RenderWorker(decoder, pads, 48000, lambda s: published.append((time.monotonic(), s)))
    worker.render_now([36])
    decoder.render = slow_render  # type: ignore[method-assign]
    time.sleep(SETTLE_SECONDS)
    pads.on_change = worker.request
    worker.start()
    try:
        changed = time.monotonic()
        pads.set_dim(36, 0, 2.0)
        deadline = changed + 2
        while len(published) < 3 and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        worker.stop()
    assert [(n, draft) for n, draft, _ in calls] == [(1, True), (VELOCITY_LAYERS, False)]
    (first_at, first), (_, full) = published[1:]
    assert first_at < calls[1][2] and first_at - changed < 0.1  # before the layers were decoded
    own = prepare_sound(
        real_render(np.array([pads.get(36).latent], np.float32), np.array([0]))[0],
        info.sample_rate,
        48000,
    )  # type: ignore[union-attr]
    assert own is not None and [v.shape[0] for v in first.variants] == [1]
    assert np.allclose(first.variants[0][0], own)  # the new latent, not the old sound
    assert [v.shape[0] for v in full.variants] == [VELOCITY_LAYERS]


def test_the_worker_reports_the_time_from_a_change_to_its_first_sound_and_its_full_pad(
    tmp_path: Path,
) -> None:
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    real_render = decoder.render

    def slow_render(z: np.ndarray, classes: np.ndarray, draft: bool = False) -> np.ndarray:
        time.sleep(0.02 * len(z))  # the full pad (5 layers) takes 100 ms, its draft 20
        return real_render(z, classes, draft)

    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    pads.update(36, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5)
    worker = RenderWorker(decoder, pads, 48000, lambda s: None)
    worker.render_now([36, 38])
    decoder.render = slow_render  # type: ignore[method-assign]
    pads.on_change = worker.request
    worker.start()
    try:
        pads.set_dim(36, 0, 2.0)  # layers: a draft first
        time.sleep(0.5)
        pads.set_dim(38, 0, 2.0)  # a plain pad: its full render is its first sound
        time.sleep(0.3)
        pads.update(38, gain=0.5)  # nothing to render: no latency
        time.sleep(0.1)
    finally:
        worker.stop()
    first, full = worker.latencies()
    assert len(first) == len(full) == 2
    assert 20 <= first[0] < 100 <= full[0] < 400  # the draft, then the five layers
    assert 20 <= first[1] == full[1] < 300


def test_at_start_every_pad_plays_a_draft_before_any_is_rendered_in_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 20: ready within a second and a half with a model whose full render is slow. The
    start publishes each layered pad's draft, says it is ready, then renders them in full; a
    plain pad (nothing cheaper to draft) is rendered in full before it says so."""
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    real_render = decoder.render
    calls: list[tuple[int, bool]] = []

    def slow_render(z: np.ndarray, classes: np.ndarray, draft: bool = False) -> np.ndarray:
        time.sleep(0.02 * len(z))
        calls.append((len(z), draft))
        return real_render(z, classes, draft)

    decoder.render = slow_render  # type: ignore[method-assign]
    info = decoder.info
    pads = PadBank(dict(list(default_pads(info.class_names, 8).items())[:3]), info.class_names, 8)
    layered, plain = pads.notes()[:2], pads.notes()[2]
    for note in layered:
        pads.update(note, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5)
    published: list[PadSound] = []
    ready: list[dict[int, int]] = []  # at on_first_pass: each note's layers published last

    def layers_now() -> dict[int, int]:
        return {s.note: s.variants[0].shape[0] for s in published}

    worker = RenderWorker(
        decoder, pads, 48000, published.append, on_first_pass=lambda: ready.append(layers_now())
    )
    caplog.set_level(logging.INFO, logger="dkvae_live.renderer")
    worker.start(render_all=True)
    try:
        deadline = time.monotonic() + 5
        while layers_now() != {**dict.fromkeys(layered, VELOCITY_LAYERS), plain: 1}:
            assert time.monotonic() < deadline, layers_now()
            time.sleep(0.01)
        while "full quality: every pad" not in caplog.text:  # said once the last is out
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        worker.stop()
    assert ready == [{**dict.fromkeys(layered, 1), plain: 1}]
    assert calls[:2] == [(2, True), (1, False)]  # both drafts in one call, then the plain pad
    assert sorted(n for n, draft in calls[2:] if not draft) == [2 * VELOCITY_LAYERS]


def test_a_long_full_render_pass_yields_to_a_change_of_another_pad(tmp_path: Path) -> None:
    """Issue 21: a pad changed while the worker renders other pads in full (a kit load, a
    sweep's settled pads) plays its first sound after the decoder call under way, not after
    the whole pass; the pads left are rendered in full afterwards."""
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=2205))
    real_render = decoder.render

    def slow_render(z: np.ndarray, classes: np.ndarray, draft: bool = False) -> np.ndarray:
        time.sleep(0.01 * len(z))  # a full pass of the varying pads below: about 3 s
        return real_render(z, classes, draft)

    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    varying = pads.notes()[:8]
    changed_pad = pads.notes()[8]
    published: list[tuple[float, PadSound]] = []
    worker = RenderWorker(decoder, pads, 48000, lambda s: published.append((time.monotonic(), s)))
    worker.render_now(pads.notes())
    decoder.render = slow_render  # type: ignore[method-assign]
    pads.on_change = worker.request
    worker.start()
    try:
        for note in varying:  # 8 pads x 8 variants x 1 layer: 64 latents to render in full
            pads.update(note, variation=0.2)
        deadline = time.monotonic() + 10
        while sum(s.note in varying and len(s.variants) == VARIANTS for _, s in published) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        changed = time.monotonic()  # the full pass is under way
        pads.set_dim(changed_pad, 0, 1.5)
        while not any(s.note == changed_pad and t > changed for t, s in published):
            assert time.monotonic() < deadline
            time.sleep(0.002)
        first_sound = next(t for t, s in published if s.note == changed_pad and t > changed)
        while {s.note for _, s in published if len(s.variants) == VARIANTS} != set(varying):
            assert time.monotonic() < deadline, "the pads left were never rendered in full"
            time.sleep(0.01)
        pass_ended = max(t for t, s in published if len(s.variants) == VARIANTS)
    finally:
        worker.stop()
    assert first_sound - changed < 0.5 < pass_ended - changed


def test_a_batch_longer_than_one_run_renders_as_each_latent_alone(tmp_path: Path) -> None:
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=2205))
    count = 2 * RUN_BATCH + 3
    z = np.random.default_rng(1).normal(0.0, 1.0, (count, 8)).astype(np.float32)
    classes = np.arange(count) % len(decoder.info.class_names)
    batched = decoder.render(z, classes)
    alone = np.concatenate([decoder.render(z[i : i + 1], classes[i : i + 1]) for i in range(count)])
    assert batched.shape == (count, 2205)
    assert np.allclose(batched, alone)


def test_a_swap_publishes_every_pad_from_the_new_model_and_lets_the_old_go(
    tmp_path: Path,
) -> None:
    old = Decoder(sine_decoder(tmp_path / "a.onnx", num_samples=4410))
    new = Decoder(sine_decoder(tmp_path / "b.onnx", num_samples=4410, base_hz=400.0))
    info = old.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    published: dict[int, PadSound] = {}
    worker = RenderWorker(old, pads, 48000, lambda s: published.__setitem__(s.note, s))
    worker.render_now(pads.notes())
    before = {note: s.variants[0] for note, s in published.items()}
    retired = threading.Event()  # stands for the old encoder
    gone = [weakref.ref(old), weakref.ref(retired)]
    worker.start()
    try:
        worker.swap_decoder(new, retired)
        del old, retired
        deadline = time.monotonic() + 5
        while any(ref() is not None for ref in gone) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(ref() is None for ref in gone), "the old decoder or encoder is still held"
    finally:
        worker.stop()
    assert set(published) == set(pads.notes())
    for note, sound in published.items():
        pad = pads.get(note)
        assert pad is not None
        raw = new.render(np.array([pad.latent], np.float32), [info.class_index(pad.class_name)])
        expected = prepare_sound(raw[0], info.sample_rate, 48000)
        assert expected is not None and np.allclose(sound.variants[0][0], expected)
        assert not np.allclose(before[note][0][:1000], expected[:1000])  # it did change


class Node:
    def __init__(self) -> None:
        self.other: object = self


def test_settle_heap_collects_cycles_first_then_keeps_the_living_out_of_collections() -> None:
    gc.disable()  # no automatic collection may free the cycle in between
    garbage, alive = Node(), Node()
    dead = weakref.ref(garbage)
    del garbage  # a cycle: only the collector can free it
    try:
        settle_heap()
        assert dead() is None  # collected, not frozen for ever
        assert gc.get_freeze_count() > 0
        assert alive not in gc.get_objects()  # frozen: later collections do not walk it
    finally:
        gc.unfreeze()
        gc.enable()


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_release_free_memory_gives_freed_buffers_back_to_the_system() -> None:
    # 1500 buffers of 100 KiB (under malloc's mmap threshold: they come from its heap), all
    # freed but the last, which keeps the heap from shrinking by itself.
    buffers = [np.ones(25_600, np.float32) for _ in range(1500)]
    last = buffers.pop()
    del buffers
    held = resident_mib()
    release_free_memory()
    assert resident_mib() < held - 100  # of the ~146 MiB freed
    assert last[0] == 1.0


FREE_A_LARGE_BUFFER_TWICE = """
import sys
from pathlib import Path
import numpy as np
from dkvae_live.rt import map_large_buffers_apart

def resident_mib():
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024

if sys.argv[1] == "apart":
    map_large_buffers_apart()
before = resident_mib()
for _ in range(2):  # the first free raises glibc's own threshold to the buffer's size
    buffer = np.ones(6 << 20, np.float32)  # 24 MiB
    del buffer
print(resident_mib() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_large_buffers_go_back_to_the_system_when_freed() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    growth = {
        how: float(
            subprocess.run(
                [sys.executable, "-c", FREE_A_LARGE_BUFFER_TWICE, how],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            ).stdout
        )
        for how in ("apart", "glibc's default")
    }
    assert growth["apart"] < 2, growth
    assert growth["glibc's default"] > 20, growth  # the heap kept the second 24 MiB


def test_osc_signatures_convert_or_say_what_is_wrong() -> None:
    params = parse_signature("note:i velocity:i?")
    assert check_arguments(params, [36.0]) == [36]
    assert check_arguments(params, [36, 90.0]) == [36, 90]
    for bad, message in [
        ([], "missing argument note"),
        ([36.5], "note must be a whole number"),
        (["36"], "note must be a number"),
        ([True], "note must be a number"),
        ([36, 1, 2], "too many arguments"),
        ([float("nan")], "finite"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_arguments(params, bad)
    latent = parse_signature("note:i values:f*")
    assert check_arguments(latent, [1, 2, 3.5]) == [1, 2.0, 3.5]
    with pytest.raises(ValueError, match="finite"):
        check_arguments(latent, [1, 0.0, float("inf")])
    cls = parse_signature("note:i class:n")
    assert check_arguments(cls, [1, "snare"]) == [1, "snare"]
    assert check_arguments(cls, [1, 2.0]) == [1, 2]


def test_osc_server_counts_malformed_and_unknown_and_replies_with_errors() -> None:
    dropped: list[str] = []
    server = OscServer("127.0.0.1", 0, lambda reason, detail: dropped.append(reason))
    got: list[list[object]] = []
    server.add("/x", "a:i", lambda args, sender: got.append(args))
    for data in [
        b"",
        b"\x00\x01",
        b"#bundle\x00" + b"\xff" * 7,
        osc_datagram("/x", 1),
        osc_datagram("/x", "no"),
        osc_datagram("/y"),
    ]:
        server.handle_datagram(data, ("127.0.0.1", 1))
    server.stop()
    assert got == [[1]]
    assert dropped.count("osc.malformed") == 3
    assert dropped.count("osc.invalid") == 1
    assert dropped.count("osc.unknown_address") == 1


def test_osc_allowlist_drops_other_senders() -> None:
    dropped: list[str] = []
    server = OscServer("127.0.0.1", 0, lambda r, d: dropped.append(r), ["10.0.0.2"])
    got: list[object] = []
    server.add("/x", "", lambda args, sender: got.append(sender))
    server.handle_datagram(osc_datagram("/x"), ("10.0.0.3", 5000))
    server.handle_datagram(osc_datagram("/x"), ("10.0.0.2", 5000))
    server.stop()
    assert dropped == ["osc.not_allowed"] and got == [("10.0.0.2", 5000)]


def test_second_server_on_the_same_port_says_so() -> None:
    from dkvae_live.osc_in import OscError

    first = OscServer("127.0.0.1", 0, lambda r, d: None)
    try:
        with pytest.raises(OscError, match="another dkvae-live"):
            OscServer("127.0.0.1", first.address[1], lambda r, d: None)
    finally:
        first.stop()


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


def test_64_simultaneous_loud_hits_stay_under_full_scale_without_clipping() -> None:
    mixer = Mixer(polyphony=64, master_gain=0.5)
    mixer.configure(48000)
    t = np.arange(48000) / 48000
    rng = np.random.default_rng(1)
    for note in range(36, 100):
        tone = np.sin(2 * np.pi * rng.uniform(60, 2000) * t) * np.exp(-t / 0.3)
        mixer.publish(PadSound(note, (tone.astype(np.float32)[None],), 1.0, 1.0, 0, 4))
    for note in range(36, 100):
        mixer.note_on(note, 127)
    out = np.zeros((48000, 2), np.float32)
    for start in range(0, 48000, 64):
        mixer.process(out[start : start + 64])
    assert np.all(np.isfinite(out))
    assert np.max(np.abs(out)) <= LIMIT + 1e-6  # never clipped: the limiter got there first
    assert mixer.limited_blocks > 0
    # and it lets go: the tail a second later is back at the unlimited level
    assert mixer.limiter_gain > 0.9


def test_the_limiter_gain_glides_back_without_steps() -> None:
    mixer = Mixer(polyphony=4, master_gain=1.0)
    mixer.configure(48000)
    loud = np.full((1, 64), 4.0, np.float32)
    quiet = np.full((1, 48000), 0.5, np.float32)
    mixer.publish(PadSound(36, (loud,), 1.0, 1.0, 0, 4))
    mixer.publish(PadSound(38, (quiet,), 1.0, 1.0, 0, 4))
    mixer.note_on(36, 127)
    mixer.note_on(38, 127)
    out = np.zeros((24000, 2), np.float32)
    for start in range(0, 24000, 64):
        mixer.process(out[start : start + 64])
    after = out[64:, 0]
    assert np.all(np.diff(after) >= -1e-7)  # rises smoothly back towards 0.5
    assert np.max(np.abs(np.diff(after))) < 1e-3
    assert after[-1] > 0.49


def test_bundles_with_lying_sizes_or_deep_nesting_are_dropped_not_parsed_forever() -> None:
    import struct

    dropped: list[str] = []
    server = OscServer("127.0.0.1", 0, lambda reason, detail: dropped.append(reason))
    message = osc_datagram("/x", 1)
    for size in (-5, -4, 0, 3, 1 << 20):
        server.handle_datagram(
            b"#bundle\x00" + bytes(8) + struct.pack(">i", size) + message, ("127.0.0.1", 1)
        )
    deep = message
    for _ in range(40):
        deep = b"#bundle\x00" + bytes(8) + struct.pack(">i", len(deep)) + deep
    server.handle_datagram(deep, ("127.0.0.1", 1))
    server.stop()
    assert dropped == ["osc.malformed"] * 6


def test_exit_after_ends_the_process_with_its_code_whatever_python_does() -> None:
    import subprocess
    import sys
    import time

    code = "import dkvae_live.mixer as m\nm.exit_after(0.2, 3)\nwhile True:\n    pass\n"
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], timeout=10)
    assert result.returncode == 3
    assert 0.2 <= time.monotonic() - start < 5.0
