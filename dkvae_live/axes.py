"""Timbre axes a drummer names (decoder metadata ``dkvae.axes``, docs/model-contract.md).

A latent dimension does something different in every model and every class. Export measures
brightness, decay, pitch and punch (:mod:`dkvae_live.descriptors`) on the bank's training
sounds and on what the decoder plays from their latents, and finds per class one latent
direction per descriptor: moving a pad's latent by ``value * direction`` moves that descriptor
by about ``value`` standard deviations of the class's real sounds, and the other three as little
as a linear fit can make it. Numpy only: the daemon reads this and the export writes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .contract import AXIS_NAMES

AXIS_LIMIT = 3.0  # an axis value is in -3..3 (standard deviations of the class's sounds)
MIN_SOUNDS = 8  # a class needs this many sounds for a fit of four directions
RIDGE = 1e-2  # regularises the regression from latents (relative to their variance)
DAMPING = 0.05  # of the pseudo-inverse (relative to the gradient's mean square)
MAX_NORM = 3.0  # longest direction stored: a weak link to the latent is not followed into noise
MAD_TO_STD = 1.4826
MIN_STD = 1e-3  # a descriptor that hardly varies in a class gives that class no axes


@dataclass(frozen=True)
class ClassAxes:
    """One class's axes: ``directions[i]`` moves descriptor ``AXIS_NAMES[i]`` by ~1 std."""

    directions: np.ndarray  # [len(AXIS_NAMES), latent_size]
    std: np.ndarray  # [len(AXIS_NAMES)]: the class's spread of each descriptor, its own unit
    r2: np.ndarray  # [len(AXIS_NAMES)]: how well the latent predicts each descriptor (0..1)
    sounds: int

    def offset(self, values: Sequence[float]) -> np.ndarray:
        """The latent offset of these axis values (in ``AXIS_NAMES`` order)."""
        return np.asarray(values, np.float64) @ self.directions

    def main_directions(self) -> np.ndarray:
        """[2, latent_size]: an orthonormal basis of the plane of the two directions that move
        the descriptors most (the XY pad's and the map's plane)."""
        q, _ = np.linalg.qr(self.directions[np.argsort(-self.r2, kind="stable")[:2]].T)
        return np.asarray(q.T)


def spread(
    real: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Each class's standard deviation of the descriptors ``real`` [n, 4] of its sounds, robust
    to outliers (1.4826 x the median absolute deviation: a Gaussian's std): a few clicks of no
    decay at all would otherwise make one std of punch a step no pad can take."""
    labels = np.asarray(labels)
    out = {}
    for i, name in enumerate(class_names):
        values = np.asarray(real, np.float64)[labels == i]
        if len(values) >= MIN_SOUNDS:
            out[name] = MAD_TO_STD * np.median(np.abs(values - np.median(values, axis=0)), axis=0)
    return out


def fit(
    z: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    played: np.ndarray,
    std: Mapping[str, np.ndarray],
) -> dict[str, ClassAxes]:
    """Fit each class with enough sounds and a spread of every descriptor.

    ``z`` [n, latent_size]: latents from the class's region; ``played`` [n, 4]: the descriptors
    of what the decoder plays from them; ``std``: the class's spread of each descriptor among
    its real sounds (:func:`spread`). A ridge regression gives the gradient G [4, latent_size]
    of the played descriptors (in those standard deviations) over the latent; the directions
    are its (damped) pseudo-inverse, so that G @ directions.T ~ I: each axis moves its own
    descriptor by one standard deviation and, as far as the fit goes, leaves the other three
    where they are. Directions longer than MAX_NORM are shortened to it.
    """
    z = np.asarray(z, np.float64)
    labels = np.asarray(labels)
    out = {}
    for index, name in enumerate(class_names):
        mask = labels == index
        if mask.sum() < MIN_SOUNDS or name not in std or np.any(std[name] < MIN_STD):
            continue
        zc = z[mask] - z[mask].mean(axis=0)
        y = np.asarray(played, np.float64)[mask]
        y = (y - y.mean(axis=0)) / std[name]
        gram = zc.T @ zc
        ridge = RIDGE * np.trace(gram) / z.shape[1]
        grad = np.linalg.solve(gram + ridge * np.eye(z.shape[1]), zc.T @ y).T  # [4, L]
        residual = y - zc @ grad.T
        r2 = 1.0 - residual.var(axis=0) / np.maximum(y.var(axis=0), 1e-12)
        # A damped pseudo-inverse: where two descriptors move together in this class (a
        # sine's pitch and brightness), their axes share a direction instead of taking long
        # ones that cancel; then each is scaled to move its own descriptor by one std.
        outer = grad @ grad.T
        damping = DAMPING * np.trace(outer) / len(outer)
        directions = np.linalg.solve(outer + damping * np.eye(len(outer)), grad).T.T
        own = np.einsum("ij,ij->i", grad, directions)
        directions = directions / np.where(np.abs(own) > 1e-9, own, 1.0)[:, None]
        norms = np.linalg.norm(directions, axis=1, keepdims=True)
        directions = directions * np.minimum(1.0, MAX_NORM / np.maximum(norms, 1e-12))
        out[name] = ClassAxes(directions, std[name], np.clip(r2, 0.0, 1.0), int(mask.sum()))
    return out


def to_json(axes: Mapping[str, ClassAxes]) -> str:
    """The metadata value: ``{class: {axis: {"direction": [...], "std": s, "r2": r}, ...,
    "sounds": n}}``."""
    data: dict[str, dict[str, object]] = {}
    for name, c in axes.items():
        entry: dict[str, object] = {
            axis: {
                "direction": [round(float(v), 6) for v in c.directions[i]],
                "std": round(float(c.std[i]), 6),
                "r2": round(float(c.r2[i]), 4),
            }
            for i, axis in enumerate(AXIS_NAMES)
        }
        entry["sounds"] = c.sounds
        data[name] = entry
    return json.dumps(data)


def from_json(text: str, class_names: Sequence[str], latent_size: int) -> dict[str, ClassAxes]:
    """Read and check the metadata value; ValueError says what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object mapping class names to their axes")
    out = {}
    for name, entry in data.items():
        if name not in class_names:
            raise ValueError(f"names class {name!r}, which is not in 'dkvae.class_names'")
        if not isinstance(entry, dict):
            raise ValueError(f"{name!r} must be an object with {', '.join(AXIS_NAMES)}")
        unknown = set(entry) - {*AXIS_NAMES, "sounds"}
        if unknown:
            raise ValueError(f"{name!r}: unknown axis {', '.join(sorted(unknown))}")
        directions, std, r2 = [], [], []
        for axis in AXIS_NAMES:
            item = entry.get(axis)
            if not isinstance(item, dict) or "direction" not in item or "std" not in item:
                raise ValueError(f"{name!r}: {axis!r} needs 'direction' and 'std'")
            try:
                direction = np.asarray(item["direction"], np.float64)
                spread = float(item["std"])
                fit_quality = float(item.get("r2", 0.0))
            except (TypeError, ValueError):
                raise ValueError(f"{name!r}: {axis!r} must hold numbers") from None
            if direction.shape != (latent_size,):
                raise ValueError(
                    f"{name!r}: {axis!r} 'direction' must have {latent_size} values, "
                    f"got shape {direction.shape}"
                )
            if not (np.all(np.isfinite(direction)) and np.isfinite(spread) and spread > 0):
                raise ValueError(f"{name!r}: {axis!r} needs finite values and a positive 'std'")
            directions.append(direction)
            std.append(spread)
            r2.append(fit_quality)
        sounds = entry.get("sounds", 0)
        if not isinstance(sounds, int) or sounds < 0:
            raise ValueError(f"{name!r}: 'sounds' must be a count")
        out[name] = ClassAxes(np.array(directions), np.array(std), np.array(r2), sounds)
    return out
