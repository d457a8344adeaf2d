"""The mixer (dkvae_live/mixer.py over _mixer.c) on its own, without an audio server."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from dkvae_live.mixer import FADE_SECONDS, LIMIT, Mixer
from dkvae_live.pad_sound import PadSound

RATE = 48000


FADE = int(FADE_SECONDS * RATE)


LEVEL = 0.25  # every test sound: a few of them add up under the limiter's threshold


def sound(note: int, length: int = 1000, choke: int = 0, polyphony: int = 4) -> PadSound:
    return PadSound.from_audio(
        note, (np.full((1, length), LEVEL, np.float32),), 1.0, 1.0, choke, polyphony
    )


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
    ramp_sound = PadSound.from_audio(36, (ramp[None],), 1.0, 0.5, 0, 4)
    mixer = mixer_with(ramp_sound)
    assert mixer.note_on(36, 127)
    out = render(mixer, 1000, block)
    played = ramp_sound.audio(0)[0]
    assert np.array_equal(out[:300, 0], played)
    assert np.array_equal(out[:300, 1], 0.5 * played)
    assert not out[300:].any()
    assert mixer.voices_active == 0 and mixer.notes_played == 1


@pytest.mark.parametrize("peak", [0.5, 0.0005])
def test_a_sound_keeps_16_bits_under_its_own_peak(peak: float) -> None:
    # Half of float's memory, and a quiet sound as clean as a loud one: a sine's error is the
    # 16-bit quantisation noise under its own peak (98 dB in theory), not under full scale.
    t = np.arange(4800) / RATE
    tone = (peak * np.sin(2 * np.pi * 441 * t)).astype(np.float32)
    s = PadSound.from_audio(36, (tone[None],), 1.0, 1.0, 0, 4)
    assert s.variants[0].nbytes == tone.nbytes // 2
    mixer = mixer_with(s)
    mixer.note_on(36, 127)
    error = render(mixer, tone.size)[:, 0] - tone
    snr_db = 10 * np.log10(
        np.mean(tone.astype(np.float64) ** 2) / np.mean(error.astype(np.float64) ** 2)
    )
    assert 95 < snr_db < 110


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
    mixer = mixer_with(PadSound.from_audio(36, variants, 1.0, 1.0, 0, 4, velocity_curve=0.0))
    for velocity, variant in [(1, 0), (127, 1), (32, 0)]:  # curve 0: velocity moves timbre only
        mixer.note_on(36, velocity)
        out = render(mixer, 256)
        position = (velocity - 1) / 126 * 2
        low = int(position)
        high = min(low + 1, 2)
        expected = (1 - (position - low)) * layers[low, 0] + (position - low) * layers[high, 0]
        assert out[0, 0] == pytest.approx(expected + 0.05 * variant, abs=1e-5)  # 16 bits
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


def test_64_simultaneous_loud_hits_stay_under_full_scale_without_clipping() -> None:
    mixer = Mixer(polyphony=64, master_gain=0.5)
    mixer.configure(48000)
    t = np.arange(48000) / 48000
    rng = np.random.default_rng(1)
    for note in range(36, 100):
        tone = np.sin(2 * np.pi * rng.uniform(60, 2000) * t) * np.exp(-t / 0.3)
        mixer.publish(PadSound.from_audio(note, (tone.astype(np.float32)[None],), 1.0, 1.0, 0, 4))
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
    mixer.publish(PadSound.from_audio(36, (loud,), 1.0, 1.0, 0, 4))
    mixer.publish(PadSound.from_audio(38, (quiet,), 1.0, 1.0, 0, 4))
    mixer.note_on(36, 127)
    mixer.note_on(38, 127)
    out = np.zeros((24000, 2), np.float32)
    for start in range(0, 24000, 64):
        mixer.process(out[start : start + 64])
    after = out[64:, 0]
    assert np.all(np.diff(after) >= -1e-7)  # rises smoothly back towards 0.5
    assert np.max(np.abs(np.diff(after))) < 1e-3
    assert after[-1] > 0.49


def test_exit_after_ends_the_process_with_its_code_whatever_python_does() -> None:
    import subprocess
    import sys
    import time

    code = "import dkvae_live.mixer as m\nm.exit_after(0.2, 3)\nwhile True:\n    pass\n"
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], timeout=10)
    assert result.returncode == 3
    assert 0.2 <= time.monotonic() - start < 5.0


def beginning_and_whole(length: int, onset: int) -> tuple[PadSound, PadSound]:
    """A noisy sound as the render worker publishes a first sound: its first `onset` samples
    (the last FADE of them faded out), then the whole, which `continues` it, at one scale."""
    rng = np.random.default_rng(0)
    audio = (LEVEL * rng.uniform(-1.0, 1.0, (1, length))).astype(np.float32)
    whole = PadSound.from_audio(36, (audio,), 1.0, 1.0, 0, 4)
    begun = whole.variants[0][:, :onset].copy()
    begun[:, onset - FADE :] = 0  # as faded, for this test: the voice must not play it
    first = PadSound(36, (begun,), whole.scales, 1.0, 1.0, 0, 4)
    return first, PadSound(36, whole.variants, whole.scales, 1.0, 1.0, 0, 4, continues=True)


@pytest.mark.parametrize("at", [0, 64, 1000])
def test_a_voice_carries_on_in_the_sound_that_continues_its_own(at: int) -> None:
    # The render worker publishes a change's first sound as its beginning, then the whole: a
    # hit on the beginning goes on in the whole from where it is, as one sound, not cut off.
    first, then = beginning_and_whole(4800, 2400)
    mixer = mixer_with(first)
    mixer.note_on(36, 127)
    out = render(mixer, at)
    mixer.publish(then)
    out = np.concatenate([out, render(mixer, 4800 - at)])
    assert np.array_equal(out[:, 0], then.audio(0)[0])
    assert mixer.voices_active == 0


def test_a_voice_keeps_its_sound_when_the_next_is_no_continuation() -> None:
    first, then = beginning_and_whole(4800, 2400)
    for other in (
        PadSound(36, then.variants, then.scales, 1.0, 1.0, 0, 4),  # not said to continue
        PadSound(36, (-then.variants[0],), then.scales, 1.0, 1.0, 0, 4, continues=True),
        PadSound(36, then.variants, (then.scales[0] / 2,), 1.0, 1.0, 0, 4, continues=True),
        PadSound(36, (then.variants[0][:, :2000],), then.scales, 1.0, 1.0, 0, 4, continues=True),
    ):
        mixer = mixer_with(first)
        mixer.note_on(36, 127)
        out = render(mixer, 64)
        mixer.publish(other)
        out = np.concatenate([out, render(mixer, 4800 - 64)])
        assert np.array_equal(out[:2400, 0], first.audio(0)[0])
        assert not out[2400:].any()


def test_a_voice_in_its_faded_end_is_not_carried_on() -> None:
    # Past the start of the beginning's fade the voice has faded out (in part): joining the
    # whole there would jump. It ends as the beginning does.
    first, then = beginning_and_whole(4800, 2400)
    mixer = mixer_with(first)
    mixer.note_on(36, 127)
    out = render(mixer, 2400 - FADE)
    mixer.publish(then)
    out = np.concatenate([out, render(mixer, 2400 + FADE)])
    assert np.array_equal(out[:2400, 0], first.audio(0)[0])
    assert not out[2400:].any()
