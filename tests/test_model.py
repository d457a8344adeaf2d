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


def test_velocity_layers_start_from_their_middle_ones_phase_and_sound_as_close() -> None:
    """The shipped model's five velocity layers of a snare: the middle layer as if alone, and
    every layer's own spectrum as close to its magnitudes (issue 18's mel distance) as when
    each is given its phase in full (bench/layer_phase.py times it)."""
    from dkvae_live.pads import Pad
    from dkvae_live.phase import spectrum_distance

    decoder = Decoder()
    info = decoder.info
    direction = np.zeros(info.latent_size)
    direction[0] = 1.0
    latent = (0.3,) * info.latent_size
    pad = Pad(38, "snare", latent, timbre_direction=tuple(direction), timbre_amount=0.6)
    z = np.array(pad.velocity_latents(5), np.float32)
    classes = np.full(5, info.class_index("snare"), np.int64)
    layered = decoder.render(z, classes, layers=5)
    alone = decoder.render(z[2:3], classes[2:3])
    np.testing.assert_allclose(layered[2], alone[0], atol=1e-5)
    magnitude = decoder.magnitudes(z, classes)
    framing = (info.n_fft, info.hop_length, info.sample_rate)
    cold = spectrum_distance(magnitude, decoder.render(z, classes), *framing)
    warm = spectrum_distance(magnitude, layered, *framing)
    assert np.all(warm < cold + 0.1), (cold, warm)
    assert not np.allclose(layered[0], decoder.render(z[:1], classes[:1])[0], atol=1e-3)


@pytest.mark.parametrize("onset_samples", [1, 4410, 10000])
def test_a_drafts_beginning_comes_first_and_is_the_whole_drafts_own(onset_samples: int) -> None:
    """The render worker publishes a change's first sound as its beginning, made from the
    frames it needs, and then the whole draft, which a voice playing the beginning carries on
    in: the beginning must be the whole draft's first samples exactly, for the shipped model's
    sounds of every class (onsets and all), and far from them too. Where a sound is loudest
    within its beginning, as drums are (those near each class's real sounds), the whole is the
    draft's render."""
    from dkvae_live.model import DEFAULT_MODEL_DIR

    decoder = Decoder(DEFAULT_MODEL_DIR)
    info = decoder.info
    rng = np.random.default_rng(3)
    drums = np.array([info.class_latents[name].sample(rng, 0.3) for name in info.class_names])
    far = rng.normal(0.0, 1.5, drums.shape)  # a few swell after their beginning
    z = np.concatenate([drums, far]).astype(np.float32)
    classes = np.arange(z.shape[0]) % len(info.class_names)
    onset, whole = decoder.drafts_onset_first(z, classes, onset_samples, floor=1e-4)
    assert onset.shape == (z.shape[0], onset_samples)
    assert np.array_equal(onset, whole[:, :onset_samples])
    drums_whole = decoder.render(z[: len(drums)], classes[: len(drums)], draft=True, floor=1e-4)
    assert np.array_equal(whole[: len(drums)], drums_whole)


def test_a_render_makes_way_before_every_latent_and_sounds_the_same(tmp_path: Path) -> None:
    """`between` comes before each latent's decoder run, not each batch's (a five-layer set
    was one run of about ten milliseconds, which a changed pad's draft waited out), and the
    latents rendered one by one sound as the batch does."""
    decoder = Decoder(sine_decoder(tmp_path / "d.onnx", num_samples=2205))
    z = np.linspace(-1.0, 1.0, 5 * 8, dtype=np.float32).reshape(5, 8)
    calls: list[int] = []
    made_way = decoder.render(z, np.zeros(5, np.int64), between=lambda: calls.append(1))
    assert len(calls) == 5
    np.testing.assert_allclose(made_way, decoder.render(z, np.zeros(5, np.int64)), atol=1e-6)
