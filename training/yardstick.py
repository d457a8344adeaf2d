"""The measures of issue 18 that ``dkvae-eval`` reports, in numpy (and scikit-learn for the
classifier), so that they can be checked on their own and trusted before a model is judged by them.

* :func:`mel_distance`: reconstruction, as issue 18 defines it (Hann 2048 / hop 512, 96 triangular
  mel bands from 20 Hz to Nyquist, floor at the reference's peak band power - 80 dB, only frames
  within 60 dB of the reference's loudest frame, mean absolute difference in dB);
  :func:`random_phase` gives the oracles it is read against (exact STFT magnitudes, random
  phases).
* :class:`Yardstick`: a class check built from the drum features of
  :mod:`dkvae_live.drum_features` (log-mel band means and deviations, attack frames, a log-RMS
  envelope over growing windows, decay times, centroid, flatness, zero-crossing rate...; every
  sound read first as the encoder reads a file, so a gain or a leading silence cannot change its
  label) and a gradient-boosted classifier trained on a bank's training split; a silent sound
  gets no label at all (-1), never a drum's.
* :func:`frechet_distance` and :func:`within_class_spread`: how close generated sounds lie to real
  ones, and how varied they are, in the yardstick's standardised feature space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dkvae_live import mel
from dkvae_live.drum_features import features, power_spectrogram
from dkvae_live.mel import MelReference, mel_filterbank

# issue 18, measure 1
MEL_N_FFT = 2048
MEL_HOP = 512
MEL_BANDS = mel.BANDS
MEL_FLOOR_DB = mel.FLOOR_DB
MEL_FRAME_RANGE_DB = mel.FRAME_RANGE_DB

_BATCH = 32
SHUFFLES = 2  # shuffled-label controls of the yardstick (see trust)


# --------------------------------------------------------------------------------------------
# Spectra


def mel_distance(
    reference: np.ndarray,
    other: np.ndarray,
    sample_rate: int,
    *,
    match_peak: bool = False,
    n_fft: int = MEL_N_FFT,
    hop: int = MEL_HOP,
    bands: int = MEL_BANDS,
    floor_db: float = MEL_FLOOR_DB,
    frame_range_db: float = MEL_FRAME_RANGE_DB,
) -> np.ndarray:
    """Issue 18's mel distance (dB), one value per pair of rows of ``[n, samples]``.

    The reference is read peak-normalised (as the encoder reads it) and ``other`` is scaled by the
    same factor, so a level error counts as one (the daemon plays what the decoder gives);
    ``match_peak`` peak-normalises ``other`` on its own instead, for a level-free reading. Power
    spectra go through ``bands`` triangular mel bands from 20 Hz to Nyquist; both mel spectrograms
    are floored at the reference's peak band power minus ``floor_db``, so what lies far under
    anything heard weighs nothing; only frames whose total power lies within ``frame_range_db`` of
    the reference's loudest frame count, so a long silent tail cannot dilute the distance; the
    result is the mean absolute difference in dB over those frames and every band.
    """
    ref = np.atleast_2d(np.asarray(reference, np.float64))
    out = np.atleast_2d(np.asarray(other, np.float64))
    if ref.shape != out.shape:
        raise ValueError(f"shapes differ: {ref.shape} and {out.shape}")
    fb = mel_filterbank(sample_rate, n_fft, bands)
    result = np.zeros(ref.shape[0])
    for i in range(0, ref.shape[0], _BATCH):
        r, o = ref[i : i + _BATCH], out[i : i + _BATCH]
        peak = np.max(np.abs(r), axis=1, keepdims=True)
        scale = 1.0 / np.where(peak > 0.0, peak, 1.0)
        if match_peak:
            peak_o = np.max(np.abs(o), axis=1, keepdims=True)
            o = o / np.where(peak_o > 0.0, peak_o, 1.0)
        else:
            o = o * scale
        p_ref = power_spectrogram(r * scale, n_fft, hop)
        p_out = power_spectrogram(o, n_fft, hop)
        for j in range(len(r)):
            heard = MelReference(p_ref[j], fb, floor_db, frame_range_db)
            result[i + j] = heard.distance(p_out[j : j + 1])[0]
    return result


def random_phase(
    audio: np.ndarray, n_fft: int, hop: int, rng: np.random.Generator | int = 0
) -> np.ndarray:
    """Each sound resynthesised from its own exact STFT magnitudes (Hann ``n_fft``, ``hop``) with
    uniformly random phases, by the inverse STFT (overlap-add): the oracle of a decoder that gets
    every magnitude right and knows nothing of the phase."""
    from scipy.signal import istft, stft

    rng = np.random.default_rng(rng)
    x = np.atleast_2d(np.asarray(audio, np.float64))
    _, _, spec = stft(x, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    spec = np.abs(spec) * np.exp(2j * np.pi * rng.random(spec.shape))
    _, out = istft(spec, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    out = out[:, : x.shape[1]]
    if out.shape[1] < x.shape[1]:
        out = np.pad(out, ((0, 0), (0, x.shape[1] - out.shape[1])))
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Features


# --------------------------------------------------------------------------------------------
# The classifier


@dataclass
class Yardstick:
    """A class check: gradient-boosted trees on :func:`features`, fitted on real sounds.

    ``mean`` and ``std`` standardise the features (from the sounds it was fitted on, the training
    split), for :func:`frechet_distance` and :func:`within_class_spread` too.
    """

    class_names: tuple[str, ...]
    sample_rate: int
    mean: np.ndarray
    std: np.ndarray
    model: Any

    @classmethod
    def fit(
        cls,
        feats: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        sample_rate: int,
        *,
        seed: int = 0,
        max_iter: int = 100,
    ) -> Yardstick:
        """Fit on ``feats`` (from :func:`features`) of real sounds and their labels. Every class
        weighs the same in the loss, so a class with few sounds is not ignored."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        x = np.asarray(feats, np.float64)
        labels = np.asarray(labels, np.int64)
        mean = x.mean(axis=0)
        # a floor: a feature (nearly) constant in training must not blow up in standardised units
        std = np.maximum(x.std(axis=0), 1e-3)
        # Small trees on coarse histograms, each split choosing among a third of the features:
        # as accurate as deeper, finer settings in a cross-validation by kit on the training
        # split (0.78), and ten times faster.
        model = HistGradientBoostingClassifier(
            learning_rate=0.1,
            max_iter=max_iter,
            max_leaf_nodes=8,
            max_features=0.3,
            max_bins=32,
            min_samples_leaf=min(20, max(2, len(labels) // 20)),
            l2_regularization=1.0,
            class_weight="balanced",
            early_stopping=False,
            random_state=seed,
        )
        # One thread: OpenMP threads that spin-wait on a shared, busy machine made a fit 10 to 40
        # times slower than one thread.
        with threadpool_limits(1):
            model.fit(x, labels)
        return cls(tuple(class_names), sample_rate, mean, std, model)

    def standardise(self, feats: np.ndarray) -> np.ndarray:
        return (np.asarray(feats, np.float64) - self.mean) / self.std

    def probabilities(self, feats: np.ndarray, silent: np.ndarray) -> np.ndarray:
        """``[n, classes]``; all zeros for a silent sound (it is no class)."""
        proba = np.zeros((len(feats), len(self.class_names)))
        if len(feats):
            from threadpoolctl import threadpool_limits

            known = np.asarray(self.model.classes_, np.int64)
            with threadpool_limits(1):
                proba[:, known] = self.model.predict_proba(np.asarray(feats, np.float64))
        proba[np.asarray(silent, bool)] = 0.0
        return proba

    def predict(self, feats: np.ndarray, silent: np.ndarray) -> np.ndarray:
        """The class index of each sound, or -1 for a silent one."""
        proba = self.probabilities(feats, silent)
        return np.where(np.asarray(silent, bool), -1, np.argmax(proba, axis=1)).astype(np.int64)


def recognition(
    asked: np.ndarray, labelled: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """How often ``labelled`` is ``asked``: overall, per class, the confusion (rows: asked, columns:
    labelled, the last column silent or unlabelled) and a 95 % Wilson interval on the overall."""
    asked, labelled = np.asarray(asked, np.int64), np.asarray(labelled, np.int64)
    n = len(class_names)
    confusion = np.zeros((n, n + 1), np.int64)
    for a, b in zip(asked, labelled, strict=True):
        confusion[a, b if 0 <= b < n else n] += 1
    right = int(np.sum(asked == labelled))
    return {
        "accuracy": right / len(asked) if len(asked) else None,
        "interval_95": list(wilson_interval(right, len(asked))),
        "sounds": len(asked),
        "per_class": {
            name: float(np.mean(labelled[asked == i] == i))
            for i, name in enumerate(class_names)
            if np.any(asked == i)
        },
        "confusion": confusion.tolist(),
    }


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """A 95 % interval for a proportion (Wilson): how much an accuracy on a few dozen sounds
    can be trusted."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return (max(0.0, centre - half), min(1.0, centre + half))


def probe_sounds(sample_rate: int, num_samples: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Sounds that are not drums, or only a drum's bare outline, to see what the yardstick makes
    of them: a trustworthy one should not label steady tones and noise confidently."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sample_rate
    noise = rng.standard_normal(num_samples)
    return {
        "silence": np.zeros(num_samples),
        "white noise, steady 1 s": noise,
        "sine 100 Hz, steady": np.sin(2 * np.pi * 100.0 * t),
        "sine 1 kHz, steady": np.sin(2 * np.pi * 1000.0 * t),
        "sine 5 kHz, steady": np.sin(2 * np.pi * 5000.0 * t),
        "square 220 Hz, steady": np.sign(np.sin(2 * np.pi * 220.0 * t)),
        "one-sample click": np.eye(1, num_samples)[0],
        "white noise, 2 ms burst": noise * (t < 0.002),
        "sine 55 Hz, decaying (kick's outline)": np.sin(2 * np.pi * 55.0 * t) * np.exp(-t * 8),
        "white noise, fast decay (hi-hat's outline)": noise * np.exp(-t * 40),
    }


def frechet_distance(
    a: np.ndarray,
    b: np.ndarray,
    weights_a: np.ndarray | None = None,
    weights_b: np.ndarray | None = None,
) -> float:
    """The Frechet distance between Gaussians fitted to two sets of feature rows:
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``. Optional weights per row (for example
    so that each class weighs the same in both sets)."""

    def moments(x: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, np.float64)
        w = np.full(len(x), 1.0 / len(x)) if w is None else np.asarray(w, np.float64) / np.sum(w)
        mu = w @ x
        d = x - mu
        # the unbiased weighted covariance (1 / (1 - sum w^2) equals n / (n - 1) for equal weights)
        cov = (d * w[:, None]).T @ d / max(1.0 - float(np.sum(w * w)), 1e-12)
        return mu, cov

    mu_a, cov_a = moments(a, weights_a)
    mu_b, cov_b = moments(b, weights_b)
    # tr((S_a S_b)^(1/2)) through the symmetric S_a^(1/2) S_b S_a^(1/2): its eigenvalues are
    # those of S_a S_b, and eigh stays real and stable where the covariances are rank-deficient
    vals, vecs = np.linalg.eigh(cov_a)
    root_a = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    cross = float(np.sum(np.sqrt(np.clip(middle, 0.0, None))))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)


def class_balanced_weights(labels: np.ndarray) -> np.ndarray:
    """A weight per row so that every class present weighs the same in total."""
    labels = np.asarray(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def within_class_spread(x: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Per class, the mean over features of the standard deviation of its rows (``x`` in
    standardised units): how varied the class's sounds are. Classes of fewer than 2 rows are
    left out."""
    labels = np.asarray(labels)
    return {
        int(c): float(np.mean(np.std(x[labels == c], axis=0, ddof=1)))
        for c in np.unique(labels)
        if np.sum(labels == c) >= 2
    }


def nearest_distance(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each row's Euclidean distance to its nearest row of ``reference`` (standardised features)."""
    sq = (x**2).sum(axis=1)[:, None] + (reference**2).sum(axis=1)[None, :] - 2.0 * x @ reference.T
    return np.sqrt(np.maximum(sq.min(axis=1), 0.0))


def trust(
    stick: Yardstick,
    train_feats: np.ndarray,
    train_labels: np.ndarray,
    test_feats: np.ndarray,
    test_silent: np.ndarray,
    test_labels: np.ndarray,
    num_samples: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Why the yardstick's labels can be believed (or not):

    * ``shuffled_label_accuracy``: the same classifier fitted on the training features with their
      labels shuffled scores about chance on the real sounds: the score comes from what the
      labels say about the sounds, not from the split's class balance;
    * ``probes``: what it makes of tones, noise, a click and silence (:func:`probe_sounds`):
      label, confidence, and distance to the nearest training sound relative to the real test
      sounds' 95th percentile of that distance (above 1: unlike any drum it was fitted on).
    """
    rng = np.random.default_rng(seed)
    shuffled = []
    for _ in range(SHUFFLES):
        control = Yardstick.fit(
            train_feats,
            rng.permutation(train_labels),
            stick.class_names,
            stick.sample_rate,
            seed=seed,
        )
        shuffled.append(float(np.mean(control.predict(test_feats, test_silent) == test_labels)))
    train_z = stick.standardise(train_feats)
    typical = float(np.percentile(nearest_distance(stick.standardise(test_feats), train_z), 95))
    probes = probe_sounds(stick.sample_rate, num_samples, seed)
    feats, silent = features(np.stack(list(probes.values())), stick.sample_rate)
    proba = stick.probabilities(feats, silent)
    label = stick.predict(feats, silent)
    far = nearest_distance(stick.standardise(feats), train_z) / max(typical, 1e-9)
    counts = np.bincount(test_labels, minlength=len(stick.class_names))
    return {
        "shuffled_label_accuracy": float(np.mean(shuffled)),
        "shuffled_label_runs": shuffled,
        "chance_uniform": 1.0 / len(stick.class_names),
        "majority_class_rate": float(counts.max() / max(counts.sum(), 1)),
        "typical_nearest_distance_95": typical,
        "probes": {
            name: {
                "label": stick.class_names[lab] if lab >= 0 else "silent",
                "confidence": float(p.max()),
                "nearest_distance_vs_real": float(d),
            }
            for name, lab, p, d in zip(probes, label, proba, far, strict=True)
        },
    }


def other_kits_heard(
    stick: Yardstick,
    train_feats: np.ndarray,
    train_labels: np.ndarray,
    feats: np.ndarray,
    silent: np.ndarray,
    labels: np.ndarray,
    kits: Sequence[str],
    seed: int = 0,
) -> float:
    """The score on a split's sounds when the yardstick has also heard the split's *other* kits:
    each kit labelled by one fitted on the training split and every other kit of the split.

    Well above the plain score: the split's kits are like each other and unlike the training
    kits, and more kits like them would lift it. Near it: each kit is unlike every other, and
    the features or the labels, not the choice of training kits, set the ceiling."""
    kits_arr = np.asarray(kits)
    labels = np.asarray(labels, np.int64)
    right = 0
    for kit in sorted(set(kits)):
        held = kits_arr == kit
        heard = Yardstick.fit(
            np.concatenate([train_feats, feats[~held]]),
            np.concatenate([train_labels, labels[~held]]),
            stick.class_names,
            stick.sample_rate,
            seed=seed,
        )
        right += int(np.sum(heard.predict(feats[held], silent[held]) == labels[held]))
    return right / max(len(labels), 1)


def main(argv: list[str] | None = None) -> int:
    """``python -m dkvae_training.yardstick BANK``: the yardstick fitted on a bank's training
    split and read on another split, with its trust checks; no model needed."""
    import argparse
    import json

    from .bank_loading import load_split

    p = argparse.ArgumentParser(prog="python -m dkvae_training.yardstick", description=main.__doc__)
    p.add_argument("bank", help="bank folder")
    p.add_argument("--split", default="test", choices=("validation", "test"))
    p.add_argument("--cache-dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)
    train = load_split(args.bank, "train", cache_dir=args.cache_dir)
    real = load_split(args.bank, args.split, cache_dir=args.cache_dir)
    rate = 44100  # load_split's default: the rate every model of this project uses
    train_feats, _ = features(train.audio, rate)
    stick = Yardstick.fit(train_feats, train.labels, train.class_names, rate, seed=args.seed)
    feats, silent = features(real.audio, rate)
    result = recognition(real.labels, stick.predict(feats, silent), train.class_names)
    result["trust"] = trust(
        stick,
        train_feats,
        train.labels,
        feats,
        silent,
        real.labels,
        train.audio.shape[1],
        args.seed,
    )
    lo, hi = result["interval_95"]
    print(
        f"{args.bank}: fitted on {len(train.labels)} training sounds; {args.split}: "
        f"{result['accuracy']:.1%} of {len(real.labels)} (95 % CI {lo:.1%}-{hi:.1%}); "
        f"shuffled labels {result['trust']['shuffled_label_accuracy']:.1%}"
    )
    names = (*train.class_names, "silent")
    print("class    right   " + " ".join(f"{n[:6]:>6s}" for n in names))
    for name, row in zip(train.class_names, result["confusion"], strict=True):
        print(
            f"{name:8s} {result['per_class'].get(name, 0.0):6.1%}  "
            + " ".join(f"{v:6d}" for v in row)
        )
    for name, probe in result["trust"]["probes"].items():
        print(
            f"probe {name:45s} {probe['label']:7s} {probe['confidence']:6.1%} "
            f"distance {probe['nearest_distance_vs_real']:.2f}"
        )
    # per kit: a split's sounds come from a few kits each, so one kit whose sounds are unlike the
    # training kits' (or whose labels are wrong) moves the score by many points at once
    from .bank_manifest import read_manifest

    kit_of = {row.id: row.kit for row in read_manifest(args.bank)}
    kits = [kit_of.get(sound_id, "?") for sound_id in real.ids]
    labelled = stick.predict(feats, silent)
    per_kit: dict[str, list[int]] = {}
    for kit, truth, label in zip(kits, real.labels, labelled, strict=True):
        counts = per_kit.setdefault(kit, [0, 0])
        counts[0] += int(truth == label)
        counts[1] += 1
    result["per_kit"] = {kit: {"right": r, "sounds": n} for kit, (r, n) in per_kit.items()}
    for kit, (right, n) in sorted(per_kit.items(), key=lambda kv: kv[1][0] / kv[1][1]):
        print(f"kit   {kit[:45]:45s} {right:3d} of {n:3d}")
    heard = other_kits_heard(
        stick, train_feats, train.labels, feats, silent, real.labels, kits, args.seed
    )
    result["other_kits_heard_accuracy"] = heard
    print(f"with the split's other kits heard in training as well: {heard:.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
