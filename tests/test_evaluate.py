"""dkvae-eval: its distances, its reference points, generation as randomize draws it, and its
targets (the measures themselves are tested in test_yardstick.py)."""

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
    format_report,
    format_table,
    onnx_model_fns,
    randomize_latents,
    reconstruction_metrics,
    reference_distances,
    targets,
)
from dkvae_training.synthetic import synthetic_drums  # noqa: E402
from harness.live import dominant_frequency  # noqa: E402
from harness.synth_models import CLASSES, expected_frequency, linear_encoder, sine_decoder  # noqa: E402

from dkvae_live.class_latents import ClassLatent  # noqa: E402

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
    assert saved["mel_distance_db"] == pytest.approx(metrics["mel_distance_db"])
    assert saved["mel_distance_db"] > 0
    assert set(saved["lsd_db_references"]) == {"smoothed_3x3", "smoothed_3x7", "random_phase"}
    assert set(saved["mel_distance_references"]) == {
        "random_phase_256_128",
        "random_phase_1024_512",
    }
    for key in ("yardstick", "generated_prior", "generated_class_latents"):
        assert 0.0 <= saved[key]["accuracy"] <= 1.0
        assert len(saved[key]["confusion"]) == len(CLASSES)
    # every generated sound is counted once in the confusion
    assert sum(map(sum, saved["generated_class_latents"]["confusion"])) == 3 * len(CLASSES)
    assert saved["realism"]["frechet_generated_test"] >= 0
    assert set(saved["targets"]) == set(targets({}))
    for name in CLASSES:
        assert len(list((tmp_path / "eval" / "generated" / name).glob("*.wav"))) == 3
    kicks = sorted((tmp_path / "eval" / "generated-class-latents" / "kick").glob("*.wav"))
    assert len(kicks) == 3
    for path in kicks:  # drawn from the kick's class latents, not from N(0, 1)
        sound, rate = sf.read(path)
        want = expected_frequency(2.0, 0)
        assert dominant_frequency(sound[:4096], rate) == pytest.approx(want, rel=0.03)
    table = format_table({"sine": metrics})
    assert "| sine |" in table and ("PASS" in table or "MISS" in table)
    report = format_report(metrics, CLASSES)
    assert "shuffled-label control" in report and "| kick |" in report


def test_randomize_latents_draws_as_the_daemons_randomize_does() -> None:
    """Same generator, same draws: the class's Gaussian (dkvae_live.osc_api._randomize), N(0,
    amount) for a class without one, clipped and rounded as a pad stores its latent."""
    mean = np.array([1.0, -2.0, 0.5])
    scale = np.diag([0.1, 0.2, 20.0])
    places = {"kick": ClassLatent(mean, scale, 10)}
    got = randomize_latents(
        places, ("kick", "snare"), np.array([0, 1]), 3, np.random.default_rng(5), amount=0.5
    )
    rng = np.random.default_rng(5)
    kick = np.clip(places["kick"].sample(rng, 0.5), -9.9, 9.9).round(4)
    snare = np.clip(rng.normal(0.0, 0.5, 3), -9.9, 9.9).round(4)
    np.testing.assert_allclose(got, np.stack([kick, snare]), atol=1e-4)


def test_targets_pass_and_miss_at_issue_18s_bounds() -> None:
    def met(**m: object) -> dict[str, bool | None]:
        return {k: v["met"] for k, v in targets(m).items()}

    assert all(v is None for v in met().values())  # nothing measured, nothing claimed
    assert met(mel_distance_db=3.99)["1 mel distance (dB)"] is True
    assert met(mel_distance_db=4.01)["1 mel distance (dB)"] is False
    real = {"accuracy": 0.85}
    gen = {"accuracy": 0.81, "per_class": {"kick": 0.9, "perc": 0.69}}
    got = met(yardstick=real, generated_class_latents=gen)
    assert got["2 yardstick on real sounds"] is True
    assert got["3 generated recognised"] is True  # 81 >= 85 - 5
    assert got["3 every class recognised"] is False  # perc 69 < 70
    assert (
        met(yardstick=real, generated_class_latents={**gen, "accuracy": 0.79})[
            "3 generated recognised"
        ]
        is False
    )
    got = met(realism={"frechet_ratio": 2.1, "spread_ratio": 0.6})
    assert got["4 Frechet ratio"] is False and got["4 within-class spread"] is True
