"""The percussive DDSP decoder (kind ``ddsp``): its synthesis layers do what they say, a tiny model
trains, exports to an ONNX decoder that the daemon loads and that matches Keras, and learns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.train

from dkvae_training.config import make_config  # noqa: E402
from dkvae_training.data import Arrays  # noqa: E402
from dkvae_training.ddsp import (  # noqa: E402
    GLIDE_RATES,
    NoiseBands,
    SineBank,
    build_decoder,
    noise_band_filters,
)
from dkvae_training.synthetic import synthetic_drums  # noqa: E402
from dkvae_training.train import train  # noqa: E402

SR = 8000
N = 4096
TINY: dict[str, Any] = {
    "sample_rate": SR,
    "num_samples": N,
    "batch_size": 4,
    "epochs": 2,
    "channels": [32, 16, 16, 16],
    "enc_channels": [16, 16, 16, 16],
    "enc_n_fft": 256,
    "enc_hop_length": 64,
    "stft_sizes": [512, 128],
    "mel_sizes": [512, 128],
    "mel_bands": 32,
    "snapshot_minutes": [],
    "kl_warmup_steps": 4,
    "gain_augment_db": 0.0,
    "ddsp_hop_length": 128,
    "ddsp_sine_downsample": 2,
    "ddsp_sines": 8,
    "ddsp_noise_bands": 8,
    "ddsp_transient_atoms": 8,
    "ddsp_transient_ms": 10.0,
}


def tiny_config(**over: Any) -> Any:
    return make_config("ddsp", **{**TINY, **over})


def tiny_arrays(per_class: int = 2, seed: int = 0) -> Arrays:
    audio, labels = synthetic_drums(per_class, sample_rate=SR, num_samples=N, seed=seed)
    return Arrays(audio, labels, tiny_config().class_names)


def render_sine(
    f_end: float, decay: float, glide_hz: float = 0.0, hop: int = 64, downsample: int = 1
) -> np.ndarray:
    """One partial from :class:`SineBank` at ``SR / downsample``: ``f_end`` Hz, amplitude
    ``exp(-decay t)``, started ``glide_hz`` above ``f_end`` on the slowest glide component."""
    frames = N // hop
    bank = SineBank(SR, hop, frames, downsample)
    t = np.arange(frames + 1) * hop / SR
    amplitude = np.exp(-decay * t).astype(np.float32)[None, :, None]
    glide = np.zeros((1, 1, len(GLIDE_RATES)), np.float32)
    glide[0, 0, 0] = glide_hz
    out = bank(np.array([[f_end]], np.float32), np.zeros((1, 1), np.float32), glide, amplitude)
    return np.asarray(out)[0]


def peak_hz(x: np.ndarray, rate: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return float(np.argmax(spec) * rate / (8 * len(x)))


def test_sine_bank_renders_the_requested_frequency_and_decay() -> None:
    x = render_sine(440.0, 6.0)
    assert x.shape == (N,)
    assert abs(peak_hz(x, SR) - 440.0) < 2.0
    assert abs(x[0]) < 1e-6  # a zero start phase starts at zero: no click
    # the envelope (RMS over whole periods) falls as exp(-6 t)
    win = 400  # 22 periods at 440 Hz
    t = (np.arange(N // win) + 0.5) * win / SR
    rms = np.sqrt(np.mean(x[: len(t) * win].reshape(-1, win) ** 2, axis=1)) * np.sqrt(2.0)
    slope, intercept = np.polyfit(t, np.log(rms), 1)
    assert slope == pytest.approx(-6.0, rel=0.05)
    assert np.exp(intercept) == pytest.approx(1.0, rel=0.05)
    # at a quarter of the rate the same partial comes out at the same frequency
    low = render_sine(440.0, 6.0, downsample=4)
    assert low.shape == (N // 4,)
    assert abs(peak_hz(low, SR / 4) - 440.0) < 2.0


def test_sine_bank_glides_down_to_its_end_frequency() -> None:
    # 200 Hz above 300 Hz, decaying at GLIDE_RATES[0] per second
    x = render_sine(300.0, 0.0, glide_hz=200.0)
    crossings = np.flatnonzero(np.diff(np.signbit(x).astype(np.int8)) != 0)
    # instantaneous frequency from the spacing of zero crossings, early and late
    early = SR / (2.0 * np.mean(np.diff(crossings[:6])))
    late = SR / (2.0 * np.mean(np.diff(crossings[-20:])))
    t_late = crossings[-10] / SR
    assert early == pytest.approx(500.0, rel=0.05)
    assert late == pytest.approx(300.0 + 200.0 * np.exp(-GLIDE_RATES[0] * t_late), rel=0.03)
    assert early > late + 50.0


def band_power(x: np.ndarray, filters: np.ndarray) -> np.ndarray:
    power = np.abs(np.fft.rfft(x)) ** 2
    # the band filters on this signal's bins, by interpolation from their own grid
    grid = np.linspace(0.0, 1.0, filters.shape[1])
    here = np.linspace(0.0, 1.0, power.shape[0])
    resp = np.stack([np.interp(here, grid, f) for f in filters])
    return resp @ power


def test_noise_band_gains_shape_the_spectrum() -> None:
    hop, bands = 128, 8
    frames = N // hop
    layer = NoiseBands(SR, hop, frames, bands)
    filters = noise_band_filters(bands, 513, SR)
    gains = np.zeros((1, frames + 1, bands), np.float32)
    gains[0, :, 5] = 1.0
    only5 = np.asarray(layer(gains))[0]
    assert only5.shape == (N,)
    assert np.sqrt(np.mean(only5**2)) == pytest.approx(1.0, rel=0.1)  # unit RMS per band
    power = band_power(only5, filters)
    assert power[5] > 0.6 * power.sum()
    assert power[5] > 20.0 * max(power[:4].max(), 1e-12)
    # a low band and a high band: the energy moves with the gains
    gains[:] = 0.0
    gains[0, :, 1] = 1.0
    low = np.asarray(layer(gains))[0]
    assert np.argmax(band_power(low, filters)) == 1
    # a gain that falls over time makes a noise that falls over time
    gains[:] = 0.0
    gains[0, :, 3] = np.linspace(1.0, 0.0, frames + 1)
    fading = np.asarray(layer(gains))[0]
    first, second = np.mean(fading[: N // 2] ** 2), np.mean(fading[N // 2 :] ** 2)
    assert first > 4.0 * second
    # deterministic: the same gains give the same noise
    np.testing.assert_array_equal(np.asarray(layer(gains))[0], fading)


def test_band_filters_partition_the_spectrum() -> None:
    filters = noise_band_filters(16, 1025, 44100)
    np.testing.assert_allclose(filters.sum(axis=0), 1.0, atol=1e-9)
    centres = np.argmax(filters, axis=1)
    assert np.all(np.diff(centres) > 0)


def test_decoder_depends_on_class_and_latent_and_starts_quiet() -> None:
    decoder = build_decoder(tiny_config())
    z = np.zeros((2, 8), np.float32)
    by_class = np.asarray(decoder([z, np.array([0, 1], np.int64)]))
    assert by_class.shape == (2, N)
    assert not np.allclose(by_class[0], by_class[1])
    z2 = np.stack([z[0], z[0] + 1.0])
    by_latent = np.asarray(decoder([z2, np.array([0, 0], np.int64)]))
    assert not np.allclose(by_latent[0], by_latent[1])
    peak = float(np.max(np.abs(by_class)))
    assert 1e-3 < peak < 1.0


def test_tiny_model_trains_exports_and_onnxruntime_matches_keras(tmp_path: Path) -> None:
    pytest.importorskip("tf2onnx")
    import onnx
    from dkvae_export.onnx_export import export_run
    from dkvae_training.models import load_trained

    from dkvae_live.model import Decoder, Encoder

    cfg = tiny_config()
    run = tmp_path / "run"
    result = train(cfg, run, tiny_arrays(), tiny_arrays(1, seed=1), smoke_test=True, verbose=0)
    assert result.epochs_done == 2
    assert (run / "checkpoints/last.weights.h5").exists()
    exported = export_run(run, tmp_path / "model")
    assert exported.decoder_max_abs_diff < 1e-3
    dec = Decoder(exported.decoder_path)
    assert (dec.info.model_kind, dec.info.output_kind) == ("ddsp", "waveform")
    assert (dec.info.sample_rate, dec.info.num_samples) == (SR, N)
    ops = {node.op_type for node in onnx.load(str(exported.decoder_path)).graph.node}
    assert not ops & {"DFT", "RFFT", "ComplexAbs", "STFT", "RandomNormal", "RandomUniform"}
    assert "Sin" in ops

    _, model = load_trained(run)
    z = np.random.default_rng(7).standard_normal((5, cfg.latent_size)).astype(np.float32)
    labels = np.array([0, 1, 2, 4, 5], np.int64)
    want = np.asarray(model.decoder([z, labels]))
    got = dec.render(z, labels)
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(dec.render(z[:1], labels[:1])[0], want[0], atol=1e-4)
    assert exported.encoder_path is not None
    assert Encoder(exported.encoder_path, dec.info).encode(tiny_arrays(1).audio).shape == (6, 8)

    # resumable: two more epochs continue from the saved state
    longer = tiny_config(epochs=4)
    again = train(longer, run, tiny_arrays(), None, resume=True, smoke_test=False, verbose=0)
    assert again.epochs_done == 4


def test_loss_falls_on_synthetic_drums(tmp_path: Path) -> None:
    cfg = tiny_config(epochs=12, kl_weight=1e-4, learning_rate=2e-3)
    result = train(cfg, tmp_path / "run", tiny_arrays(1), None, verbose=0)
    history = result.history
    assert np.mean(history["loss"][-3:]) < 0.8 * history["loss"][0], history["loss"]
    assert np.mean(history["mel"][-3:]) < 0.8 * history["mel"][0], history["mel"]
