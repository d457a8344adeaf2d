"""The decoder of dkvae_live/model.py: its checks at load and its batched renders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from harness.synth_models import sine_decoder

from dkvae_live.model import RUN_BATCH, Decoder


def test_a_spectrogram_model_is_checked_at_load_without_iterating_its_phase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading runs the graph once per class (a broken one fails at load), but the
    phase iterations are the sound's quality: they wait for the renders, so the daemon
    answers from the start."""
    from harness.synth_models import flat_spectrogram_decoder

    import dkvae_live.model as model

    path = flat_spectrogram_decoder(tmp_path / "decoder.onnx")
    iterations: list[int] = []
    real = model.invert

    def counting(
        magnitude: np.ndarray, n_fft: int, hop: int, length: int, count: int, floor: float, **kw
    ) -> np.ndarray:
        iterations.append(count)
        return real(magnitude, n_fft, hop, length, count, floor, **kw)

    monkeypatch.setattr(model, "invert", counting)
    decoder = Decoder(path)
    assert iterations == [model.DRAFT_ITERATIONS]  # the load-time check renders drafts
    audio = decoder.render(np.zeros((1, 8), np.float32), np.array([1]))
    assert iterations[-1] == model.PHASE_ITERATIONS > 0 and audio.shape == (1, 4096)
    decoder.render(np.zeros((1, 8), np.float32), np.array([1]), draft=True)
    assert iterations[-1] == model.DRAFT_ITERATIONS < model.PHASE_ITERATIONS


def test_a_batch_longer_than_one_run_renders_as_each_latent_alone(tmp_path: Path) -> None:
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=2205))
    count = 2 * RUN_BATCH + 3
    z = np.random.default_rng(1).normal(0.0, 1.0, (count, 8)).astype(np.float32)
    classes = np.arange(count) % len(decoder.info.class_names)
    batched = decoder.render(z, classes)
    alone = np.concatenate([decoder.render(z[i : i + 1], classes[i : i + 1]) for i in range(count)])
    assert batched.shape == (count, 2205)
    assert np.allclose(batched, alone)
