"""Timbre axes a drummer names (decoder metadata ``dkvae.axes``, docs/model-contract.md).

A latent dimension does something different in every model and every class. Export measures
brightness, decay, pitch and punch (:mod:`dkvae_live.descriptors`) on the bank's training
sounds and on what the decoder plays from their latents, and finds per class one latent
direction per descriptor: moving a pad's latent by ``value * direction`` moves that descriptor
by about ``value`` standard deviations of the class's real sounds, and the other three as little
as it can. A linear fit gives the directions; :func:`refine` then corrects them with what moving
real sounds' latents along them does to the sound. Numpy only: the daemon reads this and the
export writes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .contract import AXIS_NAMES

AXIS_LIMIT = 3.0  # an axis value is in -3..3 (standard deviations of the class's sounds)
MIN_SOUNDS = 8  # a class needs this many sounds for a fit of four directions
RIDGE = 1e-2  # regularises the regression from latents (relative to their variance)
DAMPING = 0.05  # of the pseudo-inverse (relative to the gradient's mean square)
MAX_NORM = 3.0  # longest direction stored: a weak link to the latent is not followed into noise
MAD_TO_STD = 1.4826
MIN_STD = 1e-3  # a descriptor that hardly varies in a class gives that class no axes
TRUST = 0.05  # how strongly refine keeps a direction near the one it measured (see correct)
MIN_OWN = 0.1  # a direction that moves its own descriptor less (stds per unit) is not trusted

Measure = Callable[[np.ndarray], np.ndarray]
"""Latents [n, latent_size] of one class -> the descriptors [n, 4] of what the decoder plays."""


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

    def main_axes(self) -> tuple[int, int]:
        """The two axes the latent predicts best (``r2``), in that order: what ``/dkvae/pad/xy``
        moves, and the plane the map draws."""
        first, second = np.argsort(-self.r2, kind="stable")[:2]
        return int(first), int(second)

    def main_directions(self) -> np.ndarray:
        """[2, latent_size]: an orthonormal basis of the plane of the two main axes."""
        q, _ = np.linalg.qr(self.directions[list(self.main_axes())].T)
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


def probes(directions: np.ndarray, z: np.ndarray) -> np.ndarray:
    """[4 + k, latent_size]: the four directions, then k = latent_size - 4 unit directions that
    complete them to the whole latent space, the ones the latents ``z`` vary most along first,
    scaled to the directions' mean length: moves of the size the axes make, in every direction
    a correction could need."""
    directions = np.asarray(directions, np.float64)
    size = directions.shape[1]
    spread = np.linalg.svd(np.asarray(z, np.float64) - np.mean(z, axis=0), full_matrices=True)[2]
    basis = np.linalg.qr(np.concatenate([directions.T, spread.T, np.eye(size)], axis=1))[0]
    rest = basis[:, len(directions) : size].T
    return np.concatenate([directions, rest * np.linalg.norm(directions, axis=1).mean()])


def response(measure: Measure, z: np.ndarray, moves: np.ndarray, std: np.ndarray) -> np.ndarray:
    """[n, moves, 4]: how far each of ``moves`` [m, latent_size] moves each descriptor of each
    latent of ``z`` [n, latent_size], in standard deviations ``std`` per unit of the move,
    measured as the acceptance test does: what is played from ``z + move`` against ``z - move``,
    halved."""
    z = np.asarray(z, np.float64)
    moves = np.asarray(moves, np.float64)
    sides = z[:, None, None, :] + np.array([-1.0, 1.0])[None, None, :, None] * moves[None, :, None]
    values = np.asarray(measure(sides.reshape(-1, z.shape[1])), np.float64)
    values = values.reshape(len(z), len(moves), 2, -1) / std
    return (values[:, :, 1] - values[:, :, 0]) / 2.0


def correct(moves: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """New directions [4, latent_size] from the ``measured`` response [n, m, 4] (see
    :func:`response`) of ``moves`` [m, latent_size], whose first four are the current directions.

    Each new direction is a combination c of the moves; its response on each latent is taken to
    be the same combination of theirs (exact where c picks one move). Per axis, c minimises the
    mean square of what the other three descriptors do, with its own moving one standard
    deviation per unit on average, plus TRUST x |c - c0|^2, c0 being the current direction
    rescaled to move its own by one: a step that stays near what was measured, since the
    response of a drum decoder is far from linear. Directions longer than MAX_NORM are shortened.
    """
    moves = np.asarray(moves, np.float64)
    measured = np.asarray(measured, np.float64)
    count = len(moves)
    out = []
    for axis in range(measured.shape[2]):
        others = np.delete(measured, axis, axis=2)
        spill = np.einsum("kmj,koj->mo", others, others) / len(measured)
        own = measured[:, :, axis].mean(axis=0)
        start = np.zeros(count)
        if own[axis] > MIN_OWN:
            start[axis] = 1.0 / own[axis]
        trust = TRUST * max(np.trace(spill) / count, 1e-12)
        system = spill + trust * np.eye(count)
        # minimise c'Sc + t|c - c0|^2 subject to own.c = 1 (a Lagrange multiplier)
        towards_start = np.linalg.solve(system, trust * start)
        towards_own = np.linalg.solve(system, own)
        scale = own @ towards_own
        if scale <= 1e-12:  # no combination moves its own descriptor: keep the direction
            out.append(moves[axis])
            continue
        c = towards_start + (1.0 - own @ towards_start) / scale * towards_own
        out.append(c @ moves)
    directions = np.array(out)
    norms = np.linalg.norm(directions, axis=1, keepdims=True)
    return directions * np.minimum(1.0, MAX_NORM / np.maximum(norms, 1e-12))


@dataclass(frozen=True)
class Measured:
    """Directions [4, latent_size] and their response measured at latents they were not
    corrected on: ``own``, each axis's own descriptor (stds per unit); ``cross``, the mean
    |move| of the other three against it (the acceptance test's ratio)."""

    directions: np.ndarray
    own: np.ndarray
    cross: np.ndarray

    @classmethod
    def of(cls, directions: np.ndarray, measured: np.ndarray) -> Measured:
        """From the response [n, m >= 4, 4] of moves whose first four are ``directions``."""
        axes = range(len(directions))
        own = np.array([measured[:, i, i].mean() for i in axes])
        others = np.array([np.abs(np.delete(measured[:, i], i, axis=1)).mean() for i in axes])
        return cls(np.asarray(directions), own, others / np.maximum(np.abs(own), 1e-12))


def best(candidates: Sequence[Measured]) -> Measured:
    """Per axis, the candidate whose others move least against its own, among those that move
    their own by more than MIN_OWN the named way (the first candidate where none does)."""
    directions, own, cross = [], [], []
    for i in range(len(candidates[0].directions)):
        score = [c.cross[i] if c.own[i] > MIN_OWN else np.inf for c in candidates]
        pick = candidates[int(np.argmin(score)) if np.isfinite(min(score)) else 0]
        directions.append(pick.directions[i])
        own.append(pick.own[i])
        cross.append(pick.cross[i])
    return Measured(np.array(directions), np.array(own), np.array(cross))


def refine(
    axes: ClassAxes, latents: Sequence[np.ndarray], measure: Measure
) -> tuple[ClassAxes, list[Measured]]:
    """Correct ``axes`` with their response measured at latents of the class's sounds.

    The linear fit is made on latents drawn wider than where pads lie, and on the descriptors'
    values rather than on their changes: on a drum decoder the directions it gives can move the
    other descriptors as much as their own. Each set of ``latents`` [n, latent_size] but the
    last measures :func:`probes` (the directions and the rest of the latent space) through
    ``measure`` and applies :func:`correct`; the last measures only the result. Each set is new
    to the directions it measures, so a correction that fitted its own latents' quirks shows;
    per axis the direction measured best is kept (:func:`best`). Returns the axes and every
    measurement, the linear fit's first."""
    directions = axes.directions
    history = []
    for z in latents[:-1]:
        moves = probes(directions, z)
        measured = response(measure, z, moves, axes.std)
        history.append(Measured.of(directions, measured))
        directions = correct(moves, measured)
    history.append(Measured.of(directions, response(measure, latents[-1], directions, axes.std)))
    return replace(axes, directions=best(history).directions), history


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
