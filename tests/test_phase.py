"""The phase a log-magnitude decoder's sounds are played with (dkvae_live.phase), judged on real
drum one-shots (lmms-common's, from $DKVAE_TEST_KITS) by the bake-off's mel distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dkvae_training import yardstick as ys
from test_importers import debian_package

from dkvae_live import phase
from dkvae_live.model import PHASE_ITERATIONS, read_sound

RATE = 44100
N_FFT, HOP = 512, 128  # the bake-off's spectrogram design (b)
FRAMES = 1 + RATE // HOP
SOUNDS = ("kick01", "bassdrum_acoustic01", "snare01", "clap01", "hihat_closed01", "tom_low01")


@pytest.fixture(scope="module")
def drums() -> np.ndarray:
    folder = debian_package("lmms-common") / "usr/share/lmms/samples/drums"
    return np.stack([read_sound(folder / f"{name}.ogg", RATE, RATE) for name in SOUNDS])


def _magnitude(audio: np.ndarray) -> np.ndarray:
    return np.abs(phase.stft(audio, N_FFT, HOP, FRAMES))


@pytest.mark.parametrize(("n_fft", "hop"), [(512, 128), (256, 128), (1024, 256), (600, 150)])
def test_istft_undoes_stft(n_fft: int, hop: int) -> None:
    audio = np.random.default_rng(0).standard_normal((2, 5000)).astype(np.float32)
    spec = phase.stft(audio, n_fft, hop, 1 + 5000 // hop)
    np.testing.assert_allclose(phase.istft(spec, n_fft, hop, 5000), audio, atol=1e-4)


def test_the_gradient_phase_is_heard_close_to_the_true_one_and_iterations_bring_it_closer(
    drums: np.ndarray,
) -> None:
    mag = _magnitude(drums)
    rng = np.random.default_rng(0)
    random = phase.istft(mag * np.exp(2j * np.pi * rng.random(mag.shape)), N_FFT, HOP, RATE)
    draft = phase.invert(mag, N_FFT, HOP, RATE, iterations=0)
    full = phase.invert(mag, N_FFT, HOP, RATE, iterations=8)
    d_random, d_draft, d_full = (ys.mel_distance(drums, x, RATE) for x in (random, draft, full))
    # on 87 test sounds of the default bank: random 4.5 dB, draft 2.2, 8 iterations 1.0
    assert np.all(d_draft < d_random), (d_draft, d_random)
    assert np.mean(d_draft) < 0.6 * np.mean(d_random)
    assert np.mean(d_full) < 0.7 * np.mean(d_draft)


def test_each_iteration_brings_the_sound_closer_from_the_first_on(drums: np.ndarray) -> None:
    """Fast Griffin-Lim's momentum extrapolates from the previous projection; before the first
    there is none, and extrapolating from the gradient phase's own spectrum (not consistent)
    made the first iteration worth nothing."""
    mag = _magnitude(drums)
    distance = [
        float(np.mean(ys.mel_distance(drums, phase.invert(mag, N_FFT, HOP, RATE, n), RATE)))
        for n in (0, 1, 2)
    ]
    assert distance[1] < 0.85 * distance[0], distance
    assert distance[2] < distance[1], distance


def test_a_hit_starts_where_its_spectrogram_says(drums: np.ndarray) -> None:
    """A random phase smears a hit's attack; the gradient phase lines the partials up."""
    onset = 4410
    late = np.zeros_like(drums)
    late[:, onset:] = drums[:, : RATE - onset]
    draft = phase.invert(_magnitude(late), N_FFT, HOP, RATE, iterations=0)
    for name, sound in zip(SOUNDS, draft, strict=True):
        start = int(np.argmax(np.abs(sound) > 0.1 * np.max(np.abs(sound))))
        assert abs(start - onset) < 0.003 * RATE, name


def test_silence_and_a_single_frame_are_no_trouble() -> None:
    silent = phase.invert(np.zeros((1, FRAMES, N_FFT // 2 + 1)), N_FFT, HOP, RATE, iterations=2)
    assert silent.shape == (1, RATE) and not np.any(silent)
    one = phase.invert(np.ones((1, 1, N_FFT // 2 + 1)), N_FFT, HOP, 200, iterations=2)
    assert one.shape == (1, 200) and np.all(np.isfinite(one))


@pytest.mark.parametrize(("n_fft", "hop"), [(N_FFT, HOP), (2048, 256)])
def test_a_tail_under_the_floor_is_not_inverted_and_nothing_above_it_changes(
    drums: np.ndarray, n_fft: int, hop: int
) -> None:
    """A drum's magnitudes are mostly tail: with a floor, only the frames that can still sound
    above it are inverted (the render worker's floor is -80 dBFS, what it trims anyway)."""
    frames = 1 + RATE // hop
    mag = np.abs(phase.stft(drums, n_fft, hop, frames))
    floor = 10 ** (-80 / 20)
    kept = phase.audible_frames(mag, n_fft, hop, floor)
    assert kept < 0.8 * frames
    for iterations in (0, 2):
        whole = phase.invert(mag, n_fft, hop, RATE, iterations)
        cut = phase.invert(mag, n_fft, hop, RATE, iterations, floor=floor)
        assert cut.shape == whole.shape
        assert np.max(np.abs(cut - whole)) < floor


def _pulsing(audio: np.ndarray, period: int, block: int = 256) -> float:
    """How much of each `period` samples' energy one `block` holds, against an even spread
    (median over the periods of the steady middle): a pulse train every `period` is
    period / block, noise about 1."""
    middle = audio[period * 2 : period * 18]
    rms = np.sqrt(np.mean(middle.reshape(-1, block) ** 2, axis=1)).reshape(-1, period // block)
    return float(np.median(rms.max(axis=1) / rms.mean(axis=1)))


def test_a_draft_of_a_smooth_noisy_tail_does_not_buzz(tmp_path: Path) -> None:
    """A decoder's magnitudes are smooth; their gradient phase alone lines every bin up again
    each n_fft samples (a buzz at sample_rate / n_fft). The daemon's drafts drift the bins
    apart; the sound kept is Griffin-Lim's, as before."""
    from harness.synth_models import spectrogram_decoder

    from dkvae_live.model import Decoder

    n_fft, hop, frames = 2048, 256, 1 + RATE // 256
    decay = -np.arange(frames, dtype=np.float32)[:, None] / 60.0  # e-fold in 60 frames
    log_mag = np.zeros((frames, n_fft // 2 + 1), np.float32) + decay
    path = spectrogram_decoder(
        tmp_path / "decoder.onnx",
        log_mag,
        sample_rate=RATE,
        num_samples=RATE,
        n_fft=n_fft,
        hop_length=hop,
    )
    decoder = Decoder(path)
    z = np.zeros((1, 8), np.float32)
    bare = phase.invert(np.exp(log_mag)[None], n_fft, hop, RATE)[0]
    assert _pulsing(bare, n_fft) > 4.0  # the buzz, as the gradient phase alone makes it
    assert _pulsing(decoder.render(z, [0], draft=True)[0], n_fft) < 1.5
    kept = phase.invert(np.exp(log_mag)[None], n_fft, hop, RATE, PHASE_ITERATIONS)[0]
    np.testing.assert_allclose(decoder.render(z, [0])[0], kept, atol=1e-6)


def test_a_sound_started_from_its_own_phase_comes_back(drums: np.ndarray) -> None:
    spec = phase.stft(drums, N_FFT, HOP, FRAMES)
    start = phase.phase_of(drums, N_FFT, HOP, FRAMES)
    again = phase.invert(np.abs(spec), N_FFT, HOP, RATE, 0, start=start)
    np.testing.assert_allclose(again, drums, atol=1e-3)
    cold = phase.invert(np.abs(spec), N_FFT, HOP, RATE, 0)
    assert np.max(np.abs(cold - drums)) > 0.1  # the gradient phase is another
