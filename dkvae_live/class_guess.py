"""A model's guess of a sound's class from the sound itself (decoder metadata
``dkvae.class_guess``, docs/model-contract.md): for a file whose name says nothing.

A multinomial logistic regression on the drum features (dkvae_live/drum_features.py),
standardised; export fits it on the bank's training split (export/class_latents.py). The
latent alone says little of the class, since the decoder is told the class beside it: the
class whose sounds' mean latent lies nearest picked the right class for 42 % of the sounds of
kits the model never saw, this guess for 53 % (docs/bake-off.md, round 8). Numpy only: the
daemon applies it and the export writes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .drum_features import FEATURES, feature_names, features


@dataclass(frozen=True)
class ClassGuess:
    """``scores = weights @ ((features - mean) / scale) + bias``, one row per class of the
    model; the guess is the class of the highest score."""

    mean: np.ndarray  # [features]
    scale: np.ndarray  # [features]
    weights: np.ndarray  # [classes, features]
    bias: np.ndarray  # [classes]

    def classes_of(self, feats: np.ndarray) -> np.ndarray:
        """The class index of each row of ``feats`` ([n, features], from
        :func:`dkvae_live.drum_features.features`)."""
        scores = ((np.asarray(feats, np.float64) - self.mean) / self.scale) @ self.weights.T
        return np.argmax(scores + self.bias, axis=1)

    def guess(self, audio: np.ndarray, sample_rate: int) -> int | None:
        """The class index of one sound (float [samples]), or None for a silent one."""
        feats, silent = features(np.asarray(audio)[None], sample_rate)
        return None if silent[0] else int(self.classes_of(feats)[0])


def to_json(guess: ClassGuess) -> str:
    """The metadata value: ``{"features": FEATURES, "mean": [...], "scale": [...],
    "weights": [[...], ...], "bias": [...]}``."""
    return json.dumps(
        {
            "features": FEATURES,
            "mean": [round(float(v), 6) for v in guess.mean],
            "scale": [round(float(v), 6) for v in guess.scale],
            "weights": [[round(float(v), 6) for v in row] for row in guess.weights],
            "bias": [round(float(v), 6) for v in guess.bias],
        }
    )


def from_json(text: str, class_names: Sequence[str]) -> ClassGuess:
    """Read and check the metadata value; ValueError says what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError(
            "must be a JSON object with 'features', 'mean', 'scale', 'weights', 'bias'"
        )
    if data.get("features") != FEATURES:
        raise ValueError(
            f"names features {data.get('features')!r}; this daemon computes {FEATURES!r}"
        )
    count = len(feature_names())
    shapes = {
        "mean": (count,),
        "scale": (count,),
        "weights": (len(class_names), count),
        "bias": (len(class_names),),
    }
    arrays = {}
    for key, shape in shapes.items():
        try:
            value = np.asarray(data[key], np.float64)
        except KeyError:
            raise ValueError(f"needs {key!r}") from None
        except (TypeError, ValueError):
            raise ValueError(f"{key!r} must hold numbers") from None
        if value.shape != shape:
            raise ValueError(f"{key!r} must have shape {shape}, got {value.shape}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{key!r}: values must be finite")
        arrays[key] = value
    if np.any(arrays["scale"] <= 0.0):
        raise ValueError("'scale' must be positive")
    return ClassGuess(**arrays)
