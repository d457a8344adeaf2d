"""The render worker of dkvae_live/renderer.py and its sound preparation, without audio."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from harness.synth_models import flat_spectrogram_decoder, sine_decoder

from dkvae_live import model, renderer
from dkvae_live.model import Decoder
from dkvae_live.pad_sound import FULL_SCALE, PadSound
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

QUANTUM = 1 / FULL_SCALE  # the mixer keeps 16 bits of each variant, under its peak (<= 1)


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
            # the rendered sound key's [1] is the pad's latent
            if (
                36 in published
                and cast(tuple[float, ...], worker._rendered[36][0][1])[0] == 1.0
                and not worker._dirty
            ):
                break
            time.sleep(0.01)
    finally:
        worker.stop()
    assert worker.renders < 50  # 201 changes, far fewer renders
    pad = pads.get(36)
    assert pad is not None
    want = decoder.render(np.array([pad.latent], np.float32), [0])[0]
    expected = prepare_sound(want, info.sample_rate, 48000)
    assert expected is not None
    assert np.allclose(published[36].audio(0)[0], expected, atol=QUANTUM)


def test_the_worker_gives_the_decoders_arena_back_once_at_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no render for ARENA_REST_SECONDS the decoder's arena is given back, once; a change
    renders (the arena grows again) and, once the pads rest again, gives it back again."""
    monkeypatch.setattr(renderer, "ARENA_REST_SECONDS", 0.3)
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    released: list[float] = []
    release = decoder.release_arena

    def counted_release() -> None:
        released.append(time.monotonic())
        release()

    monkeypatch.setattr(decoder, "release_arena", counted_release)
    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    ready = threading.Event()
    worker = RenderWorker(decoder, pads, 48000, lambda s: None, on_first_pass=ready.set)
    pads.on_change = worker.request
    worker.start(render_all=True)
    try:
        assert ready.wait(10)
        time.sleep(1.0)
        at_rest = list(released)
        renders = worker.renders
        changed = time.monotonic()
        pads.set_dim(36, 0, 1.0)
        time.sleep(1.0)
    finally:
        worker.stop()
    assert len(at_rest) == 1  # once, not every ARENA_REST_SECONDS
    assert worker.renders > renders
    # again once the change's renders rest (they take a few ms, more on a loaded machine)
    assert len(released) == 2 and 0.3 < released[1] - changed < 0.3 + 0.5
    # and what it does: the session runs on after it, the same sound
    z = np.array([pads.get(36).latent], np.float32)  # type: ignore[union-attr]
    before = decoder.render(z, [0])
    decoder.release_arena()
    np.testing.assert_array_equal(decoder.render(z, [0]), before)


def test_the_render_worker_kept_busy_works_at_most_its_share_of_the_time(tmp_path: Path) -> None:
    # A real-time thread that renders without end makes Linux stop every real-time thread
    # of its core (JACK's too) once they use 95 % of a second. Each decoder run here takes
    # 50 ms (without the GIL, as onnxruntime runs a big model) and changes arrive faster.
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    runs: list[tuple[float, float, float]] = []  # start, end, time spent in `between`
    real_render = decoder.render

    def slow_render(
        z: np.ndarray,
        classes: np.ndarray,
        draft: bool = False,
        between: Callable[[], None] | None = None,
        floor: float = 0.0,
        layers: int = 1,
    ) -> np.ndarray:
        start = time.monotonic()
        time.sleep(0.05)
        waited = [0.0]  # in the worker's rests and the drafts it makes in between

        def timed() -> None:
            assert between is not None
            since = time.monotonic()
            between()
            waited[0] += time.monotonic() - since

        audio = real_render(z, classes, draft, timed if between else None, floor, layers)
        runs.append((start, time.monotonic(), waited[0]))
        return audio

    decoder.render = slow_render  # type: ignore[method-assign,assignment]
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
    busy = sum(end - start - waited for start, end, waited in runs)
    assert busy / (max(end for _, end, _ in runs) - min(start for start, _, _ in runs)) < 0.85


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

    def slow_render(
        z: np.ndarray, classes: np.ndarray, draft: bool = False, **options: Any
    ) -> np.ndarray:
        time.sleep(0.03)  # a big model's decoder call
        calls.append((len(z), draft, time.monotonic()))
        return real_render(z, classes, draft, **options)

    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    pads.update(36, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5)
    published: list[tuple[float, PadSound]] = []
    worker = RenderWorker(decoder, pads, 48000, lambda s: published.append((time.monotonic(), s)))
    worker.render_now([36])
    decoder.render = slow_render  # type: ignore[method-assign,assignment]
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
    pad = pads.get(36)
    assert pad is not None
    own = prepare_sound(
        real_render(np.array([pad.latent], np.float32), np.array([0]))[0],
        info.sample_rate,
        48000,
    )
    assert own is not None and [v.shape[0] for v in first.variants] == [1]
    assert np.allclose(first.audio(0)[0], own, atol=QUANTUM)  # the new latent, not the old sound
    assert [v.shape[0] for v in full.variants] == [VELOCITY_LAYERS]


def test_a_changed_pads_first_sound_is_its_layer_nearest_the_velocity_it_was_last_played_at(
    tmp_path: Path,
) -> None:
    """The draft is one latent; a player hitting hard hears the draft of the layer their hard
    hits sound most of, not the pad's middle layer (velocity moves timbre along the pad's
    direction)."""
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    pads.update(36, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5)
    published: list[PadSound] = []
    worker = RenderWorker(decoder, pads, 48000, published.append)
    worker.render_now([36])
    time.sleep(SETTLE_SECONDS)
    pads.on_change = worker.request
    worker.hit(36, 110)  # between the layers at 95.5 and 127, nearer the first
    worker.start()
    try:
        pads.set_dim(36, 0, 2.0)
        deadline = time.monotonic() + 2
        while len(published) < 3 and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        worker.stop()
    pad = pads.get(36)
    assert pad is not None
    first = published[1]

    def sound(latent: tuple[float, ...]) -> np.ndarray:
        audio = decoder.render(np.array([latent], np.float32), np.array([0]))[0]
        prepared = prepare_sound(audio, info.sample_rate, 48000)
        assert prepared is not None
        return prepared

    hard, middle = sound(pad.velocity_latents(VELOCITY_LAYERS)[-2]), sound(pad.latent)
    assert [v.shape[0] for v in first.variants] == [1]
    assert np.allclose(first.audio(0)[0], hard, atol=QUANTUM)
    assert not np.allclose(hard, middle, atol=100 * QUANTUM)


def test_the_worker_reports_the_time_from_a_change_to_its_first_sound_and_its_full_pad(
    tmp_path: Path,
) -> None:
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    real_render = decoder.render

    def slow_render(
        z: np.ndarray, classes: np.ndarray, draft: bool = False, **options: Any
    ) -> np.ndarray:
        time.sleep(0.02 * len(z))  # the full pad (5 layers) takes 100 ms, its draft 20
        return real_render(z, classes, draft, **options)

    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    pads.update(36, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5)
    worker = RenderWorker(decoder, pads, 48000, lambda s: None)
    worker.render_now([36, 38])
    decoder.render = slow_render  # type: ignore[method-assign,assignment]
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

    def slow_render(
        z: np.ndarray, classes: np.ndarray, draft: bool = False, **options: Any
    ) -> np.ndarray:
        time.sleep(0.02 * len(z))
        calls.append((len(z), draft))
        return real_render(z, classes, draft, **options)

    decoder.render = slow_render  # type: ignore[method-assign,assignment]
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

    def slow_render(
        z: np.ndarray, classes: np.ndarray, draft: bool = False, **options: Any
    ) -> np.ndarray:
        time.sleep(0.01 * len(z))  # a full pass of the varying pads below: about 3 s
        return real_render(z, classes, draft, **options)

    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    varying = pads.notes()[:8]
    changed_pad = pads.notes()[8]
    published: list[tuple[float, PadSound]] = []
    worker = RenderWorker(decoder, pads, 48000, lambda s: published.append((time.monotonic(), s)))
    worker.render_now(pads.notes())
    decoder.render = slow_render  # type: ignore[method-assign,assignment]
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


def test_a_pad_rendered_in_full_for_seconds_makes_way_within_a_sound_for_another_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: a spectrogram model's full render of a varying pad with velocity layers (40
    sounds, each with its phase refined: seconds) makes way, between two sounds, for the draft
    of another pad that changes meanwhile; then it goes on, and the long pad is published in
    full."""
    decoder = Decoder(flat_spectrogram_decoder(tmp_path / "d.onnx"))
    real_invert = model.invert

    def slow_invert(magnitude: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        if args[3] > 0:  # iterations: a sound kept, its phase refined, 40 ms a sound
            time.sleep(0.04 * magnitude.shape[0])
        return real_invert(magnitude, *args, **kwargs)

    monkeypatch.setattr(model, "invert", slow_invert)
    info = decoder.info
    pads = PadBank(dict(list(default_pads(info.class_names, 8).items())[:2]), info.class_names, 8)
    long_pad, other = pads.notes()
    published: list[tuple[float, PadSound]] = []
    worker = RenderWorker(decoder, pads, 16000, lambda s: published.append((time.monotonic(), s)))
    worker.render_now(pads.notes())
    pads.on_change = worker.request
    worker.start()
    try:
        pads.update(
            long_pad, timbre_direction=(1.0,) + (0.0,) * 7, timbre_amount=0.5, variation=0.2
        )
        deadline = time.monotonic() + 10
        while not any(s.note == long_pad for _, s in published[2:]):  # its draft
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(0.2)  # its full render (1.6 s) is under way
        changed = time.monotonic()
        pads.set_dim(other, 0, 1.5)
        while not any(s.note == other and t > changed for t, s in published):
            assert time.monotonic() < deadline
            time.sleep(0.002)
        first_sound = next(t for t, s in published if s.note == other and t > changed)
        while not any(s.note == long_pad and len(s.variants) == VARIANTS for _, s in published):
            assert time.monotonic() < deadline, "the long pad was never rendered in full"
            time.sleep(0.01)
    finally:
        worker.stop()
    assert first_sound - changed < 0.3
    full = next(s for _, s in published if s.note == long_pad and len(s.variants) == VARIANTS)
    assert full.variants[0].shape[0] == VELOCITY_LAYERS


def test_a_plain_pad_moved_without_pause_is_heard_all_along(tmp_path: Path) -> None:
    """A pad with nothing cheaper to draft (one latent, a waveform model) has its full render
    as the first sound of each change: a change that comes during it must not cut it short,
    or a knob turned without pause would not be heard until it stops."""
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    real_render = decoder.render

    def slow_render(
        z: np.ndarray, classes: np.ndarray, draft: bool = False, **options: Any
    ) -> np.ndarray:
        time.sleep(0.03)
        return real_render(z, classes, draft, **options)

    decoder.render = slow_render  # type: ignore[method-assign,assignment]
    info = decoder.info
    pads = PadBank(dict(list(default_pads(info.class_names, 8).items())[:1]), info.class_names, 8)
    (note,) = pads.notes()
    published: list[PadSound] = []
    worker = RenderWorker(decoder, pads, 48000, published.append)
    pads.on_change = worker.request
    worker.start()
    try:
        end = time.monotonic() + 1.0
        i = 0
        while time.monotonic() < end:  # a change every 2 ms, faster than a render
            pads.set_dim(note, 0, (i % 100) / 100)
            i += 1
            time.sleep(0.002)
        heard = len(published)
    finally:
        worker.stop()
    assert heard >= 10


def test_a_spectrogram_models_pads_are_rendered_in_full_one_call_each(tmp_path: Path) -> None:
    """Its full render is mostly each sound's phase, which a batch does not make cheaper: a
    changed pad is published as soon as its own sounds are done, not with its neighbours'. Each
    call says how many velocity layers each of its sounds has, so that their phases start from
    one another's."""
    decoder = Decoder(flat_spectrogram_decoder(tmp_path / "d.onnx"))
    calls: list[tuple[int, bool, int]] = []
    real_render = decoder.render

    def counting_render(
        z: np.ndarray, classes: np.ndarray, draft: bool = False, **options: Any
    ) -> np.ndarray:
        calls.append((len(z), draft, options.get("layers", 1)))
        return real_render(z, classes, draft, **options)

    info = decoder.info
    pads = PadBank(dict(list(default_pads(info.class_names, 8).items())[:3]), info.class_names, 8)
    worker = RenderWorker(decoder, pads, 16000, lambda s: None)
    decoder.render = counting_render  # type: ignore[method-assign,assignment]
    _, layered, varied = pads.notes()  # the first plays one sound
    for note in (layered, varied):
        pads.update(note, timbre_direction=(1.0,) + (0.0,) * 7, timbre_amount=0.5)
    pads.update(varied, variation=0.2)
    worker.render_now(pads.notes())
    full = [(1, False, 1), (VELOCITY_LAYERS, False, VELOCITY_LAYERS)]
    assert calls == [*full, (VARIANTS * VELOCITY_LAYERS, False, VELOCITY_LAYERS)]


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
    before = {note: s.audio(0) for note, s in published.items()}
    retired = threading.Event()  # stands for the old encoder
    gone: list[weakref.ref[object]] = [weakref.ref(old), weakref.ref(retired)]
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
        assert expected is not None and np.allclose(sound.audio(0)[0], expected, atol=QUANTUM)
        assert not np.allclose(before[note][0][:1000], expected[:1000])  # it did change


def published_after_a_change(
    decoder: Decoder, pads: PadBank, count: int
) -> tuple[list[PadSound], RenderWorker]:
    """The first `count` sounds that a worker publishes after pad 36's first dimension is
    moved, once pad 36 was rendered; and the worker, stopped."""
    published: list[PadSound] = []
    worker = RenderWorker(decoder, pads, 48000, published.append)
    worker.render_now([36])
    published.clear()
    pads.on_change = worker.request
    worker.start()
    try:
        pads.set_dim(36, 0, 1.0)
        deadline = time.monotonic() + 5
        while len(published) < count and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        worker.stop()
    assert len(published) >= count, published
    return published[:count], worker


def test_a_changes_first_sound_is_its_beginning_then_the_whole_that_a_hit_carries_on_in(
    tmp_path: Path,
) -> None:
    """Issue 21: the next hit after a change needs the beginning of the new sound alone. The
    worker publishes the draft's first ONSET_SECONDS as soon as they are made, then the whole
    draft as its continuation (then the full pad): a hit on the beginning plays the whole
    draft, one sound, not a beginning cut off."""
    from dkvae_live.mixer import Mixer

    decoder = Decoder(flat_spectrogram_decoder(tmp_path / "d.onnx"))  # 0.256 s
    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    pads.update(36, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5)
    (beginning, whole, full), worker = published_after_a_change(decoder, pads, 3)
    assert beginning.variants[0].shape == (1, round(renderer.ONSET_SECONDS * 48000))
    assert whole.continues and whole.variants[0].shape[1] > beginning.variants[0].shape[1]
    assert not full.continues and full.variants[0].shape[0] == VELOCITY_LAYERS
    assert len(worker.latencies()[0]) == 1  # the first sound is the beginning's
    mixer = Mixer(4, master_gain=1.0)
    mixer.configure(48000)
    mixer.publish(beginning)
    mixer.note_on(36, 127)
    out = np.zeros((48000, 2), np.float32)
    mixer.process(out[:256])
    mixer.publish(whole)
    mixer.process(out[256:])
    played = whole.audio(0)[0]
    assert np.allclose(out[: played.size, 0], played * whole.gain_left, atol=1e-6)


def slow_phase(tmp_path: Path) -> tuple[Decoder, PadBank]:
    """A spectrogram model whose sound kept is 3000 phase iterations (0.1-0.2 s a sound), and
    the General MIDI pads on it."""
    decoder = Decoder(flat_spectrogram_decoder(tmp_path / "d.onnx"), phase_iterations=3000)
    names = decoder.info.class_names
    return decoder, PadBank(default_pads(names, 8), names, 8)


def test_a_pad_changed_during_another_sounds_phase_plays_before_that_phase_is_done(
    tmp_path: Path,
) -> None:
    """A spectrogram model's sound kept is its phase's Griffin-Lim iterations, one sound's
    of which can be many milliseconds: a pad changed meanwhile gets its first sound between
    two iterations, not after the sound."""
    decoder, pads = slow_phase(tmp_path)
    published: list[tuple[float, int]] = []
    worker = RenderWorker(
        decoder, pads, 48000, lambda s: published.append((time.monotonic(), s.note))
    )
    worker.render_now([36, 38])
    pads.on_change = worker.request
    worker.start()
    try:
        time.sleep(SETTLE_SECONDS)
        published.clear()
        pads.set_dim(36, 0, 1.0)  # one latent, but its sound kept is 3000 iterations
        deadline = time.monotonic() + 5
        while len(published) < 2 and time.monotonic() < deadline:  # 36's first sound
            time.sleep(0.0005)
        time.sleep(0.005)  # into 36's sound kept
        changed = time.monotonic()
        pads.set_dim(38, 0, 1.0)
        while time.monotonic() < deadline and not (
            any(n == 36 for _, n in published[2:]) and any(n == 38 for _, n in published)
        ):
            time.sleep(0.001)
    finally:
        worker.stop()
    first_38 = next(at for at, n in published if n == 38)
    kept_36 = next(at for at, n in published[2:] if n == 36)
    assert changed < first_38 < kept_36, published


def test_a_first_sound_louder_after_its_beginning_is_not_clipped(tmp_path: Path) -> None:
    """The beginning and the whole draft share one scale (the mixer moves a voice across), and
    the whole is not quieter than the beginning: a swell after ONSET_SECONDS keeps its level."""
    from harness.synth_models import spectrogram_decoder

    n_fft, hop, num_samples = 512, 128, 8192  # 16 kHz: 0.51 s
    log_magnitude = np.full((1 + num_samples // hop, n_fft // 2 + 1), -9.0, np.float32)
    log_magnitude[int(0.2 * 16000 / hop) :] = -2.0  # 40 dB louder from 0.2 s on
    decoder = Decoder(
        spectrogram_decoder(
            tmp_path / "d.onnx",
            log_magnitude,
            sample_rate=16000,
            num_samples=num_samples,
            n_fft=n_fft,
            hop_length=hop,
        )
    )
    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    whole = published_after_a_change(decoder, pads, 2)[0][1]
    assert whole.continues
    z = np.array([pads.get(36).latent], np.float32)  # type: ignore[union-attr]
    own = prepare_sound(decoder.render(z, np.array([0]), draft=True)[0], 16000, 48000)
    assert own is not None
    assert np.max(np.abs(own[9600:])) > 10 * np.max(np.abs(own[:4800]))  # after 0.2 s, 0.1 s
    assert np.allclose(whole.audio(0)[0], own, atol=QUANTUM)


def test_a_full_render_whose_pad_changed_meanwhile_is_abandoned(tmp_path: Path) -> None:
    """A pad changed during its own full render plays its new draft at once, and the full
    render under way, now out of date, stops there: the new one follows after one render's
    time, not two."""
    decoder, pads = slow_phase(tmp_path)
    published: list[tuple[float, PadSound]] = []
    worker = RenderWorker(decoder, pads, 48000, lambda s: published.append((time.monotonic(), s)))
    worker.render_now([36])
    pads.on_change = worker.request
    worker.start()

    def full_after(count: int, deadline: float) -> float:
        """When the first full render after the first `count` publications came out."""
        while time.monotonic() < deadline:
            done = [at for at, s in published[count + 2 :] if not s.continues]
            if done:
                return done[0]
            time.sleep(0.001)
        raise AssertionError(f"no full render: {published}")

    try:
        time.sleep(SETTLE_SECONDS)
        published.clear()
        start = time.monotonic()
        pads.set_dim(36, 0, 1.0)
        one_render = full_after(0, start + 5) - start
        time.sleep(SETTLE_SECONDS)
        count = len(published)
        pads.set_dim(36, 0, -1.0)
        while len(published) < count + 2:
            time.sleep(0.001)
        time.sleep(0.2 * one_render)  # into its full render
        changed = time.monotonic()
        count = len(published)
        pads.set_dim(36, 0, 0.5)
        again = full_after(count, changed + 5) - changed
    finally:
        worker.stop()
    assert again < 1.5 * one_render, (again, one_render)


def resting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """How long each of the worker's rests (RenderWorker._rest) lasted, as they come."""
    rested: list[float] = []
    real_rest = RenderWorker._rest

    def counting(self: RenderWorker, since: float) -> None:
        start = time.monotonic()
        real_rest(self, since)
        rested.append(time.monotonic() - start)

    monkeypatch.setattr(RenderWorker, "_rest", counting)
    return rested


def phase_worker(tmp_path: Path, phase_iterations: int) -> tuple[RenderWorker, PadBank]:
    """A started worker on the General MIDI pads of a spectrogram model whose sound kept is
    `phase_iterations` phase iterations, pad 36 rendered."""
    decoder = Decoder(flat_spectrogram_decoder(tmp_path / "d.onnx"), phase_iterations)
    names = decoder.info.class_names
    pads = PadBank(default_pads(names, 8), names, 8)
    worker = RenderWorker(decoder, pads, 48000, lambda s: None)
    worker.render_now([36])
    pads.on_change = worker.request
    worker.start()
    return worker, pads


def full_render_time(worker: RenderWorker, pads: PadBank) -> float:
    """Change pad 36 and wait for its full render: the seconds it took."""
    started = time.monotonic()
    pads.set_dim(36, 0, 1.0)
    while worker.latencies()[1] == [] and time.monotonic() < started + 20:
        time.sleep(0.005)
    assert worker.latencies()[1], "no full render"
    return time.monotonic() - started


def test_a_long_render_past_its_burst_rests_however_often_it_makes_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker is a real-time thread: kept busy, Linux throttles every real-time thread of
    its core, JACK's too. Past its first BURST_SECONDS it rests REST_FRACTION of its work,
    also when the work comes in the small steps between which a changed pad's draft may go
    (phase iterations)."""
    rested = resting(monkeypatch)
    worker, pads = phase_worker(tmp_path, phase_iterations=9000)
    try:
        took = full_render_time(worker, pads)
    finally:
        worker.stop()
    work = took - sum(rested)
    assert work > 3 * renderer.BURST_SECONDS  # a render long enough to owe rests
    owed = renderer.REST_FRACTION * (work - renderer.BURST_SECONDS)
    assert sum(rested) >= 0.8 * owed, (sum(rested), work)


def test_a_rested_worker_renders_a_pad_in_full_without_a_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A knob turned once, after a rest: the pad's full render (well under BURST_SECONDS of
    work) is not held back by rests for work it has not been kept busy with."""
    rested = resting(monkeypatch)
    worker, pads = phase_worker(tmp_path, phase_iterations=100)
    try:
        time.sleep(2 * renderer.BURST_SECONDS)
        rested.clear()
        took = full_render_time(worker, pads)
    finally:
        worker.stop()
    assert took < 0.8 * renderer.BURST_SECONDS, took  # a render within the burst
    assert sum(rested) < 0.001, rested


Published = list[tuple[float, PadSound]]


def slowly_prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RenderWorker, PadBank, Published, list[float]]:
    """A started worker on a sine model's General MIDI pads, pad 36 varying (40 sounds to
    prepare) and pad 38 with velocity layers, rendered, and each sound's preparation 3 ms
    slower: (the worker, its pads, what it publishes and when, when each preparation began)."""
    prepares: list[float] = []
    real_prepare = renderer.prepare_sound

    def slow_prepare(audio: np.ndarray, model_rate: int, device_rate: int) -> np.ndarray | None:
        prepares.append(time.monotonic())
        time.sleep(0.003)  # 40 sounds: 120 ms
        return real_prepare(audio, model_rate, device_rate)

    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=4410))
    info = decoder.info
    pads = PadBank(default_pads(info.class_names, 8), info.class_names, 8)
    pads.update(36, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5, variation=0.1)
    # velocity layers: 38 has a draft cheaper than its full render (a plain pad's waits)
    pads.update(38, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5)
    published: Published = []
    worker = RenderWorker(decoder, pads, 48000, lambda s: published.append((time.monotonic(), s)))
    worker.render_now([36, 38])
    monkeypatch.setattr(renderer, "prepare_sound", slow_prepare)
    time.sleep(SETTLE_SECONDS)
    pads.on_change = worker.request
    worker.start()
    return worker, pads, published, prepares


def into_full_render_of_36(pads: PadBank, published: Published, prepares: list[float]) -> None:
    """Change pad 36 and wait until its draft is out and its full render has prepared a few
    of its 40 sounds."""
    pads.set_dim(36, 0, 1.0)
    deadline = time.monotonic() + 2
    drafted: list[float] = []
    while not drafted:
        assert time.monotonic() < deadline, "36 was never drafted"
        drafted = [at for at, s in published if s.note == 36 and len(s.variants) == 1]
        time.sleep(0.001)
    while len([at for at in prepares if at > drafted[-1]]) < 5:
        assert time.monotonic() < deadline, "36's full render never began its sounds"
        time.sleep(0.001)


def published_after(changed: float, published: Published, count: int) -> list[PadSound]:
    """What was published after `changed`, once `count` are (or 2 s have passed)."""
    while len([s for at, s in published if at > changed]) < count:
        if time.monotonic() > changed + 2:
            break
        time.sleep(0.001)
    return [s for at, s in published if at > changed]


def test_a_pad_changed_while_its_sounds_are_prepared_plays_its_draft_before_any_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Preparing a varying pad's 40 sounds takes tens of milliseconds. Changed then, the
    pad's render is out of date: it is dropped, and the new draft is the next sound
    published, not the old pad."""
    worker, pads, published, prepares = slowly_prepared(tmp_path, monkeypatch)
    try:
        into_full_render_of_36(pads, published, prepares)
        changed = time.monotonic()
        pads.set_dim(36, 0, -1.0)
        after = published_after(changed, published, 1)
    finally:
        worker.stop()
    assert after and [v.shape[0] for v in after[0].variants] == [1], after[:1]


def test_a_pad_changed_while_another_pads_sounds_are_prepared_plays_before_they_are_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A varying pad's 40 sounds take tens of milliseconds to prepare. Another pad changed
    meanwhile plays its draft between two of them, not after all 40; the varying pad is then
    published all the same."""
    worker, pads, published, prepares = slowly_prepared(tmp_path, monkeypatch)
    try:
        into_full_render_of_36(pads, published, prepares)
        changed = time.monotonic()
        pads.set_dim(38, 0, 1.0)
        after = [s.note for s in published_after(changed, published, 2)]
    finally:
        worker.stop()
    assert after[:1] == [38], after  # 38's draft before 36's full pad
    assert 36 in after[1:]  # which is published all the same
