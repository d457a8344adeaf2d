"""The render worker's decay guard: a generated one-shot never swells back out of its decay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from harness.synth_models import spectrogram_decoder

from dkvae_live.decay_guard import RISE_DB, frame_db, guard_decay
from dkvae_live.model import Decoder
from dkvae_live.phase import stft

FRAMES, BINS = 120, 257


def decay(levels_db: np.ndarray, seed: int = 0) -> np.ndarray:
    """[1, frames, bins] noise magnitudes whose frames have these energies (dB)."""
    noise = np.abs(np.random.default_rng(seed).standard_normal((1, len(levels_db), BINS)))
    noise /= np.sqrt((noise**2).sum(axis=-1, keepdims=True))
    return (noise * 10 ** (levels_db[None, :, None] / 20)).astype(np.float32)


def test_a_sound_that_wobbles_as_it_decays_passes_untouched() -> None:
    # a slow attack, a 60 dB decay with a rattle of +-8 dB (a snare's, a cymbal's shimmer)
    t = np.arange(FRAMES)
    levels = np.where(t < 5, -20 + 4 * t, -0.5 * (t - 5)) + 8 * np.sin(t / 3) * (t >= 5)
    magnitude = decay(levels)
    assert np.array_equal(guard_decay(magnitude.copy()), magnitude)


def test_a_late_burst_out_of_the_decay_is_capped_over_the_quietest_frame_before_it() -> None:
    levels = np.concatenate([np.linspace(0, -70, 80), np.full(40, -25.0)])  # back up at frame 80
    magnitude = decay(levels)
    guarded = frame_db(guard_decay(magnitude.copy()))[0]
    np.testing.assert_allclose(guarded[:80], levels[:80], atol=1e-3)  # the sound itself kept
    np.testing.assert_allclose(guarded[80:], -70 + RISE_DB, atol=1e-3)


def test_a_spectrogram_models_late_burst_is_not_played(tmp_path: Path) -> None:
    rate, n_fft, hop, length = 16000, 512, 128, 16000
    frames = length // hop + 1
    tone = np.sin(2 * np.pi * 500 * np.arange(length) / rate).astype(np.float32)
    envelope = np.exp(-np.arange(length) / (0.05 * rate)).astype(np.float32)  # -87 dB at 0.6 s
    burst_at = int(0.8 * rate)
    envelope[burst_at:] = 0.1  # -20 dB: loud junk where the sound had died away
    magnitude = np.abs(stft((tone * envelope)[None], n_fft, hop, frames))
    path = spectrogram_decoder(
        tmp_path / "decoder.onnx",
        np.log(magnitude[0] + 1e-6),
        sample_rate=rate,
        num_samples=length,
        n_fft=n_fft,
        hop_length=hop,
        log_offset="1e-6",
    )
    audio = Decoder(path).render(np.zeros((1, 8), np.float32), np.array([0]))[0]
    peak_db = 20 * np.log10(np.abs(audio[: rate // 10]).max())
    burst_db = 20 * np.log10(np.abs(audio[burst_at + n_fft :]).max())
    assert peak_db > -3  # the hit itself plays
    assert burst_db < peak_db - 50  # the burst, 20 dB under the hit in the model, is gone
