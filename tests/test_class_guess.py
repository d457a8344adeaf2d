"""A model's class guess (dkvae_live/class_guess.py, `dkvae.class_guess`): fitted at export on
drums whose classes are known, carried in the decoder, and what kit-from-folder gives a sound
whose file name says nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness.synth_models import CLASSES, sine_decoder

from dkvae_live import class_guess
from dkvae_live.drum_features import FEATURES, feature_names, features
from dkvae_live.kit_from_folder import class_of_sound
from dkvae_live.model import Decoder, ModelError

pytest.importorskip("sklearn")

from dkvae_export.class_latents import fit_class_guess
from dkvae_training.synthetic import synthetic_drums

SR = 44100
N = 22050


@pytest.fixture(scope="module")
def guess() -> class_guess.ClassGuess:
    audio, labels = synthetic_drums(8, sample_rate=SR, num_samples=N, seed=0)
    fitted = fit_class_guess(audio, labels, SR, len(CLASSES))
    assert fitted is not None
    return fitted


def test_a_guess_fitted_on_drums_tells_new_ones_apart_and_silence_is_none(
    guess: class_guess.ClassGuess,
) -> None:
    audio, labels = synthetic_drums(5, sample_rate=SR, num_samples=N, seed=100)
    feats, _ = features(audio, SR)
    assert np.mean(guess.classes_of(feats) == labels) >= 0.9
    assert guess.guess(audio[0], SR) == labels[0]
    assert guess.guess(np.zeros(N, np.float32), SR) is None
    # a class with no training sound is never the guess
    few = fit_class_guess(audio[labels < 3], labels[labels < 3], SR, len(CLASSES))
    assert few is not None and set(few.classes_of(feats)) <= {0, 1, 2}
    assert fit_class_guess(audio[labels == 0], labels[labels == 0], SR, len(CLASSES)) is None


def test_the_guess_travels_in_the_decoder_and_decides_before_the_latents(
    guess: class_guess.ClassGuess, tmp_path: Path
) -> None:
    audio, _ = synthetic_drums(1, sample_rate=SR, num_samples=N, seed=7)
    # the latents alone would call everything a kick: the only class they place
    kick_only = json.dumps({"kick": {"mean": [0.0] * 8, "scale": np.eye(8).tolist()}})
    both = Decoder(
        sine_decoder(
            tmp_path / "both" / "decoder.onnx",
            metadata={
                "dkvae.class_guess": class_guess.to_json(guess),
                "dkvae.class_latents": kick_only,
            },
        )
    ).info
    assert both.class_guess is not None
    feats, _ = features(audio, SR)
    np.testing.assert_array_equal(both.class_guess.classes_of(feats), guess.classes_of(feats))
    latent = np.zeros(8)
    assert [class_of_sound(a, latent, both) for a in audio] == [
        CLASSES[i] for i in guess.classes_of(feats)
    ]
    latents_only = Decoder(
        sine_decoder(
            tmp_path / "latents" / "decoder.onnx", metadata={"dkvae.class_latents": kick_only}
        )
    ).info
    assert latents_only.class_guess is None
    assert {class_of_sound(a, latent, latents_only) for a in audio} == {"kick"}
    neither = Decoder(sine_decoder(tmp_path / "neither" / "decoder.onnx")).info
    assert class_of_sound(audio[0], latent, neither) is None


def _guess_json(**change: object) -> str:
    count, classes = len(feature_names()), len(CLASSES)
    value: dict[str, object] = {
        "features": FEATURES,
        "mean": [0.0] * count,
        "scale": [1.0] * count,
        "weights": [[0.0] * count] * classes,
        "bias": [0.0] * classes,
    }
    return json.dumps(value | change)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{nope", "is not JSON"),
        ("[]", "must be a JSON object"),
        (_guess_json(features="mfcc-2"), "names features 'mfcc-2'"),
        (_guess_json(bias=[0.0] * 5), "'bias' must have shape (6,)"),
        (_guess_json(weights=[[0.0] * 3] * 6), "'weights' must have shape"),
        (_guess_json(mean="x"), "'mean' must hold numbers"),
        (_guess_json(scale=[0.0] * len(feature_names())), "'scale' must be positive"),
        (_guess_json(bias=[float("nan")] * 6), "values must be finite"),
        (json.dumps({"features": FEATURES}), "needs 'mean'"),
    ],
)
def test_a_broken_guess_is_refused_saying_what_is_wrong(
    tmp_path: Path, value: str, message: str
) -> None:
    path = sine_decoder(tmp_path / "decoder.onnx", metadata={"dkvae.class_guess": value})
    with pytest.raises(ModelError) as err:
        Decoder(path)
    assert "'dkvae.class_guess'" in str(err.value) and message in str(err.value)
    assert str(path) in str(err.value)
