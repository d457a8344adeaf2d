"""The yardsticks of issue 18 (training/yardstick.py): each rule shown to act, on sounds built so
that the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from dkvae_training import yardstick as ys
from dkvae_training.synthetic import synthetic_drums

from dkvae_live import drum_features

SR = 44100
N = 22050  # half a second keeps every test fast
CLASSES = ("kick", "snare", "hihat", "tom", "cymbal", "perc")


def _noise(seed: int = 0, n: int = N) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def test_mel_distance_is_zero_for_the_sound_itself_and_for_a_copy_at_the_same_relative_level() -> (
    None
):
    x, _ = synthetic_drums(2, sample_rate=SR, num_samples=N)
    assert np.all(ys.mel_distance(x, x, SR) < 1e-9)
    # the reference is read peak-normalised and the other sound scaled with it
    assert np.all(ys.mel_distance(0.3 * x, 0.3 * x, SR) < 1e-9)
    # a copy at another level: a level error counts, unless the peaks are matched
    quieter = 0.5 * x
    assert np.all(ys.mel_distance(x, quieter, SR, match_peak=True) < 1e-6)
    assert np.all(ys.mel_distance(x, quieter, SR) > 0.2)


def test_a_level_error_counts_in_full_where_no_band_is_floored() -> None:
    noise = _noise()[None, :]  # white noise: every band far above the -80 dB floor
    assert ys.mel_distance(noise, 0.5 * noise, SR)[0] == pytest.approx(20 * np.log10(2), abs=1e-6)


def test_mel_distance_grows_with_added_noise() -> None:
    x, _ = synthetic_drums(1, sample_rate=SR, num_samples=N)
    noise = np.stack([_noise(i) for i in range(len(x))])
    little, more = (ys.mel_distance(x, x + a * noise, SR) for a in (0.001, 0.03))
    assert np.all(little > 0) and np.all(more > little + 1.0)


def test_what_lies_under_the_floor_weighs_nothing() -> None:
    t = np.arange(N) / SR
    sine = np.sin(2 * np.pi * 440.0 * t)[None, :]
    # noise 120 dB under the sine: every band it fills is under the reference's peak - 80 dB
    whisper = sine + 1e-6 * _noise()[None, :]
    assert ys.mel_distance(sine, whisper, SR)[0] < 0.01
    # without the floor the same whisper is a large distance: the floor is what hides it
    assert ys.mel_distance(sine, whisper, SR, floor_db=300.0)[0] > 5.0
    # and a noise 30 dB under the sine is heard
    assert ys.mel_distance(sine, sine + 0.03 * _noise()[None, :], SR)[0] > 3.0


def test_only_frames_within_60_db_of_the_loudest_count() -> None:
    burst = np.zeros(N)
    burst[:4096] = _noise(1, 4096)
    ref = burst + 1e-5 * _noise(2)  # a tail 100 dB under the burst
    other = burst + 1e-3 * _noise(3)  # the same burst, a tail 40 dB louder than the reference's
    kept = ys.mel_distance(ref[None], other[None], SR)[0]
    every_frame = ys.mel_distance(ref[None], other[None], SR, frame_range_db=300.0)[0]
    # the tail's frames are left out: only the frames around the burst count
    assert kept < 1.0 < 5.0 < every_frame


def test_the_mel_filterbank_has_no_empty_band_and_refuses_a_too_short_fft() -> None:
    fb = ys.mel_filterbank(SR, ys.MEL_N_FFT, ys.MEL_BANDS)
    assert fb.shape == (ys.MEL_N_FFT // 2 + 1, ys.MEL_BANDS)
    assert np.all(fb.sum(axis=0) > 0)
    centres = np.argmax(fb, axis=0)
    assert np.all(np.diff(centres) >= 0)  # bands rise in frequency
    with pytest.raises(ValueError):
        ys.mel_filterbank(SR, 64, ys.MEL_BANDS)


def test_random_phase_costs_a_click_more_than_a_noise() -> None:
    noise = _noise()[None, :]
    click = np.zeros((1, N), np.float32)
    click[0, 1000] = 1.0
    distances = []
    for sound in (noise, click):
        resynth = ys.random_phase(sound, 1024, 512, rng=1)
        assert resynth.shape == sound.shape
        distances.append(ys.mel_distance(sound, resynth, SR)[0])
    # noise has no phase to lose, a click is all phase: smeared over a 1024-sample frame
    assert 0.0 < distances[0] < 5.0 and distances[1] > distances[0] + 3.0


def test_prepare_reads_a_sound_as_the_encoder_does() -> None:
    x = np.zeros((2, 1000), np.float32)
    x[0, 100:110] = [0.001, 0.3, -0.6, 0.2, 0, 0, 0, 0, 0, 0]
    out, silent = drum_features.prepare(x)
    assert list(silent) == [False, True]
    assert out[0, 0] == pytest.approx(0.5) and np.max(np.abs(out[0])) == pytest.approx(1.0)
    assert not np.any(out[1])


def test_features_ignore_gain_and_leading_silence() -> None:
    x, _ = synthetic_drums(1, sample_rate=SR, num_samples=N)
    x = np.pad(x, ((0, 0), (0, N)))  # room for the whole sound after a shift
    shifted = np.zeros_like(x)
    shifted[:, 700:] = 0.2 * x[:, :-700]
    a, _ = drum_features.features(x, SR)
    b, _ = drum_features.features(shifted, SR)
    assert a.shape == (6, len(drum_features.feature_names()))
    assert np.max(np.abs(a - b)) < 0.2  # float32 rounding near the -100 dB floors


def _fit(per_class: int, seed: int = 0, shuffle: bool = False) -> tuple[ys.Yardstick, float]:
    train, labels = synthetic_drums(per_class, sample_rate=SR, num_samples=N, seed=seed)
    test, test_labels = synthetic_drums(5, sample_rate=SR, num_samples=N, seed=seed + 100)
    if shuffle:
        labels = np.random.default_rng(seed).permutation(labels)
    feats, _ = drum_features.features(train, SR)
    stick = ys.Yardstick.fit(feats, labels, CLASSES, SR, max_iter=40)
    test_feats, silent = drum_features.features(test, SR)
    return stick, float(np.mean(stick.predict(test_feats, silent) == test_labels))


def test_the_classifier_separates_clearly_different_classes_and_not_shuffled_labels() -> None:
    stick, accuracy = _fit(8)
    assert accuracy >= 0.9
    _, shuffled = _fit(8, shuffle=True)
    assert shuffled < 0.5  # chance is 1/6: nothing to learn from shuffled labels
    # silence is no class at all
    feats, silent = drum_features.features(np.zeros((1, N)), SR)
    assert stick.predict(feats, silent)[0] == -1
    assert np.all(stick.probabilities(feats, silent) == 0)


def test_recognition_counts_right_answers_per_class_and_the_confusion() -> None:
    rec = ys.recognition(np.array([0, 0, 1, 1]), np.array([0, 1, 1, -1]), ("a", "b"))
    assert rec["accuracy"] == 0.5
    assert rec["per_class"] == {"a": 0.5, "b": 0.5}
    assert rec["confusion"] == [[1, 1, 0], [0, 1, 1]]  # the last column: silent
    lo, hi = rec["interval_95"]
    assert lo < 0.5 < hi


def test_frechet_distance_is_zero_for_a_set_and_itself_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 5))
    assert abs(ys.frechet_distance(x, x)) < 1e-6
    shift = np.array([1.0, 0, 0, 0, 2.0])
    # same covariance: the distance is the squared shift of the means
    assert ys.frechet_distance(x, x + shift) == pytest.approx(5.0, rel=1e-6)
    assert ys.frechet_distance(x, 2 * x) > ys.frechet_distance(x, 1.2 * x) > 0.1
    # fewer rows than features (rank-deficient covariances) still gives a finite distance
    few = rng.standard_normal((10, 40))
    assert np.isfinite(ys.frechet_distance(few, few + 1.0))
    assert ys.frechet_distance(few, few + 1.0) == pytest.approx(40.0, rel=1e-6)


def test_class_balanced_weights_let_each_class_weigh_the_same() -> None:
    labels = np.array([0, 0, 0, 1])
    x = np.array([[0.0], [0.0], [0.0], [4.0]])
    y = np.array([[0.0], [4.0]])
    # weighted, the 3:1 set has the 1:1 set's mean and spread
    d = ys.frechet_distance(
        x, y, ys.class_balanced_weights(labels), ys.class_balanced_weights([0, 1])
    )
    assert d < ys.frechet_distance(x, y)


def test_within_class_spread_scales_with_the_sounds_spread() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4))
    labels = np.repeat([0, 1, 2], 20)
    base, half = ys.within_class_spread(x, labels), ys.within_class_spread(0.5 * x, labels)
    assert set(base) == {0, 1, 2}
    for c in base:
        assert half[c] == pytest.approx(0.5 * base[c])


def _kits_apart(shared: bool) -> tuple[ys.Yardstick, dict[str, np.ndarray]]:
    """Two classes told apart by feature 0 in training; three unseen kits that tell them apart
    by feature 1 instead (``shared``), or each kit by a feature of its own."""
    rng = np.random.default_rng(0)
    n, d = 120, 6
    train = rng.standard_normal((n, d))
    train_labels = np.arange(n) % 2
    train[:, 0] += 4.0 * train_labels
    feats, labels, kits = [], [], []
    for k in range(3):
        x = rng.standard_normal((40, d))
        y = np.arange(40) % 2
        x[:, 1 if shared else 1 + k] += 4.0 * y
        x[:, 0] = 2.0  # between the training classes: feature 0 says nothing here
        feats.append(x)
        labels.append(y)
        kits += [f"kit{k}"] * 40
    stick = ys.Yardstick.fit(train, train_labels, ("a", "b"), SR, max_iter=40)
    split = {
        "train_feats": train,
        "train_labels": train_labels,
        "feats": np.concatenate(feats),
        "silent": np.zeros(120, bool),
        "labels": np.concatenate(labels),
        "kits": np.array(kits),
    }
    return stick, split


def test_other_kits_heard_tells_a_split_of_alike_kits_from_one_of_kits_each_its_own() -> None:
    stick, alike = _kits_apart(shared=True)
    plain = float(np.mean(stick.predict(alike["feats"], alike["silent"]) == alike["labels"]))
    assert plain < 0.7  # the training kits taught it nothing about these
    assert ys.other_kits_heard(stick, **alike) > 0.9  # the other kits did
    stick, apart = _kits_apart(shared=False)
    assert ys.other_kits_heard(stick, **apart) < 0.7
