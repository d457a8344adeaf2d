"""Tiny synthetic drum-like sounds, for tests and for developing without a bank.

Each class has its own recipe (a pitched, swept sine for kicks and toms, filtered noise bursts for
hats and cymbals, a tone plus noise for snares, a click for percussion) with random variation.
They are not drums; they are just different enough from one another that a model can learn them.
"""

from __future__ import annotations

import numpy as np

from dkvae_live.labels import CLASS_NAMES_DEFAULT


def _render(kind: str, rng: np.random.Generator, sample_rate: int, num_samples: int) -> np.ndarray:
    t = np.arange(num_samples) / sample_rate
    noise = rng.standard_normal(num_samples)
    if kind in ("kick", "tom"):
        f0 = rng.uniform(45, 70) if kind == "kick" else rng.uniform(90, 220)
        sweep = f0 * (1.0 + 3.0 * np.exp(-t * rng.uniform(30, 60)))
        phase = 2 * np.pi * np.cumsum(sweep) / sample_rate
        x = np.sin(phase) * np.exp(-t * rng.uniform(6, 14))
    elif kind == "snare":
        tone = np.sin(2 * np.pi * rng.uniform(160, 240) * t) * np.exp(-t * 25)
        x = 0.5 * tone + 0.5 * noise * np.exp(-t * rng.uniform(12, 25))
    elif kind == "hihat":
        x = np.diff(noise, prepend=0.0) * np.exp(-t * rng.uniform(25, 60))
    elif kind == "cymbal":
        x = np.diff(noise, prepend=0.0) * np.exp(-t * rng.uniform(2, 5))
    else:
        f = rng.uniform(500, 1500)
        x = np.sin(2 * np.pi * f * t) * np.exp(-t * rng.uniform(30, 80))
    x = x / (np.max(np.abs(x)) + 1e-9)
    return x.astype(np.float32)


def synthetic_drums(
    per_class: int,
    *,
    sample_rate: int = 44100,
    num_samples: int = 44100,
    class_names: tuple[str, ...] = CLASS_NAMES_DEFAULT,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(audio float32 [n, num_samples], labels int64 [n])``, ``per_class`` sounds per class.

    Unknown class names fall back to the percussion recipe.
    """
    rng = np.random.default_rng(seed)
    audio, labels = [], []
    for index, name in enumerate(class_names):
        for _ in range(per_class):
            audio.append(_render(name, rng, sample_rate, num_samples))
            labels.append(index)
    return np.stack(audio), np.asarray(labels, dtype=np.int64)
