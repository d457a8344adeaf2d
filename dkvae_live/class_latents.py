"""Where each class's real sounds lie in a model's latent space (decoder metadata
``dkvae.class_latents``, docs/model-contract.md).

A VAE is trained towards the prior N(0, I), but one class's sounds occupy only part of it, and
the decoder plays noise-like sounds from the rest. Export fits a Gaussian per class to the
encoder's latents of the bank's training split and stores it in the decoder, so that the daemon's
randomize (and the evaluation's generation) draws a snare from where real snares lie. Numpy only:
the daemon reads this and the export writes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MIN_SOUNDS = 2  # a class needs at least this many encoded sounds to be fitted
RIDGE = 1e-3  # added to each covariance's diagonal: a class of few sounds still has a spread


@dataclass(frozen=True)
class ClassLatent:
    """One class: its sounds' latents are about ``mean + scale @ e`` with e ~ N(0, I)."""

    mean: np.ndarray  # [latent_size]
    scale: np.ndarray  # [latent_size, latent_size], lower-triangular
    sounds: int

    def sample(self, rng: np.random.Generator, amount: float = 1.0) -> np.ndarray:
        """A random latent of this class; ``amount`` scales the spread (0: the class's mean)."""
        return self.mean + amount * (self.scale @ rng.standard_normal(self.mean.shape[0]))


def fit(z: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict[str, ClassLatent]:
    """A Gaussian (mean, Cholesky factor of the covariance) per class with enough sounds."""
    z = np.asarray(z, np.float64)
    out = {}
    for index, name in enumerate(class_names):
        zc = z[np.asarray(labels) == index]
        if len(zc) < MIN_SOUNDS:
            continue
        cov = np.cov(zc, rowvar=False) + RIDGE * np.eye(z.shape[1])
        out[name] = ClassLatent(zc.mean(axis=0), np.linalg.cholesky(cov), len(zc))
    return out


def to_json(latents: Mapping[str, ClassLatent]) -> str:
    """The metadata value: ``{class: {"mean": [...], "scale": [[...], ...], "sounds": n}}``."""
    return json.dumps(
        {
            name: {
                "mean": [round(float(v), 6) for v in c.mean],
                "scale": [[round(float(v), 6) for v in row] for row in c.scale],
                "sounds": c.sounds,
            }
            for name, c in latents.items()
        }
    )


def from_json(text: str, class_names: Sequence[str], latent_size: int) -> dict[str, ClassLatent]:
    """Read and check the metadata value; ValueError says what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object mapping class names to {mean, scale}")
    out = {}
    for name, entry in data.items():
        if name not in class_names:
            raise ValueError(f"names class {name!r}, which is not in 'dkvae.class_names'")
        if not isinstance(entry, dict) or "mean" not in entry or "scale" not in entry:
            raise ValueError(f"{name!r} needs 'mean' and 'scale'")
        try:
            mean = np.asarray(entry["mean"], np.float64)
            scale = np.asarray(entry["scale"], np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name!r}: 'mean' and 'scale' must be lists of numbers") from None
        if mean.shape != (latent_size,) or scale.shape != (latent_size, latent_size):
            raise ValueError(
                f"{name!r}: 'mean' must have {latent_size} values and 'scale' be "
                f"{latent_size}x{latent_size}, got {mean.shape} and {scale.shape}"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))):
            raise ValueError(f"{name!r}: values must be finite")
        if np.any(np.triu(scale, 1)):
            raise ValueError(f"{name!r}: 'scale' must be lower-triangular")
        sounds = entry.get("sounds", 0)
        if not isinstance(sounds, int) or sounds < 0:
            raise ValueError(f"{name!r}: 'sounds' must be a count")
        out[name] = ClassLatent(mean, scale, sounds)
    return out
