"""dkvae-eval: its distances, its reference points, and generation from a model's class latents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.train

import soundfile as sf  # noqa: E402
from dkvae_training.evaluate import (  # noqa: E402
    evaluate,
    format_table,
    onnx_model_fns,
    reconstruction_metrics,
    reference_distances,
)
from dkvae_training.synthetic import synthetic_drums  # noqa: E402
from live_harness import dominant_frequency  # noqa: E402
from synth_models import CLASSES, expected_frequency, linear_encoder, sine_decoder  # noqa: E402

SR, N = 44100, 22050


def test_distances_are_zero_for_the_sound_itself_and_grow_with_what_an_oracle_does_not_know() -> (
    None
):
    audio, _ = synthetic_drums(2, sample_rate=SR, num_samples=N)
    same = reconstruction_metrics(audio, audio)
    assert np.all(same["lsd_db"] < 1e-3) and np.all(same["mrstft"] < 1e-3)
    refs = reference_distances(audio)
    # smoothing over more bins forgets more; none of them is free, and a quieter copy is cheap
    assert 0.5 < refs["smoothed_3x3"] < refs["smoothed_3x7"]
    assert refs["random_phase"] > 1.0
    noise = np.random.default_rng(0).normal(0.0, 0.1, (2, N)).astype(np.float32)
    quieter = reconstruction_metrics(noise, 0.5 * noise)["lsd_db"]
    assert quieter == pytest.approx(20 * np.log10(2), abs=0.01)  # 6 dB in every bin


def test_evaluate_writes_metrics_sounds_and_generates_from_the_class_latents(
    tmp_path: Path,
) -> None:
    kick_mean = [2.0] + [0.0] * 7  # the sine model: two octaves above its kick at z = 0
    where = {"kick": {"mean": kick_mean, "scale": (0.01 * np.eye(8)).tolist(), "sounds": 4}}
    model = tmp_path / "model"
    sine_decoder(
        model / "decoder.onnx", num_samples=N, metadata={"dkvae.class_latents": json.dumps(where)}
    )
    linear_encoder(model / "encoder.onnx", num_samples=N)
    fns = onnx_model_fns(model)
    assert fns.class_latents is not None and set(fns.class_latents) == {"kick"}
    audio, labels = synthetic_drums(3, sample_rate=SR, num_samples=N)
    train_audio, train_labels = synthetic_drums(4, sample_rate=SR, num_samples=N, seed=1)
    metrics = evaluate(
        fns,
        audio,
        labels,
        tmp_path / "eval",
        train_audio=train_audio,
        train_labels=train_labels,
        per_class=3,
    )
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["lsd_db"] == pytest.approx(metrics["lsd_db"]) and saved["lsd_db"] > 0
    assert set(saved["lsd_db_references"]) == {"smoothed_3x3", "smoothed_3x7", "random_phase"}
    for key in ("classifier_accuracy_generated", "classifier_accuracy_generated_class_latents"):
        assert 0.0 <= saved[key] <= 1.0
    for name in CLASSES:
        assert len(list((tmp_path / "eval" / "generated" / name).glob("*.wav"))) == 3
    kicks = sorted((tmp_path / "eval" / "generated-class-latents" / "kick").glob("*.wav"))
    assert len(kicks) == 3
    for path in kicks:  # drawn from the kick's class latents, not from N(0, 1)
        sound, rate = sf.read(path)
        want = expected_frequency(2.0, 0)
        assert dominant_frequency(sound[:4096], rate) == pytest.approx(want, rel=0.03)
    table = format_table({"sine": metrics})
    assert "| sine |" in table and "smoothed_3x3" in table
