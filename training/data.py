"""Training data: a bank's (or generated) sounds as arrays, the augmentations, and the
``tf.data`` pipelines that single-process and distributed training both read."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Arrays:
    """The part of a bank that training uses (``BankArrays`` from the bank module fits it)."""

    audio: np.ndarray  # float32 [N, num_samples]
    labels: np.ndarray  # int64 [N]
    class_names: tuple[str, ...]


def load_arrays(bank: Path, split: str, cfg: TrainConfig, cache_dir: Path | None) -> Arrays:
    """One split of a bank, cleaned at the config's sample rate and length."""
    from .bank_loading import load_split

    arrays = load_split(
        bank, split, sample_rate=cfg.sample_rate, num_samples=cfg.num_samples, cache_dir=cache_dir
    )
    return Arrays(arrays.audio, arrays.labels, tuple(arrays.class_names))


def synthetic_arrays(per_class: int, cfg: TrainConfig, seed: int) -> Arrays:
    """``per_class`` generated sounds of each of the config's classes (development)."""
    from .synthetic import synthetic_drums

    audio, labels = synthetic_drums(
        per_class,
        sample_rate=cfg.sample_rate,
        num_samples=cfg.num_samples,
        class_names=cfg.class_names,
        seed=seed,
    )
    return Arrays(audio, labels, cfg.class_names)


def pitch_shifted(arrays: Arrays, semitones: Sequence[float], sample_rate: int) -> Arrays:
    """``arrays`` followed by a copy at each shift in ``semitones``, each sound played at
    ``2 ** (shift / 12)`` times its speed, cut or zero-padded to its length and peak-normalised
    again (the encoder's input is peak-normalised)."""
    import soxr

    audio, labels = [arrays.audio], [arrays.labels]
    n = arrays.audio.shape[1]
    for shift in semitones:
        rate = sample_rate * 2.0 ** (float(shift) / 12.0)
        copy = np.zeros_like(arrays.audio)
        for i, sound in enumerate(arrays.audio):
            moved = soxr.resample(sound, rate, sample_rate, quality="HQ")[:n]
            copy[i, : len(moved)] = moved / max(float(np.max(np.abs(moved))), 1e-9)
        audio.append(copy)
        labels.append(arrays.labels)
    return Arrays(np.concatenate(audio), np.concatenate(labels), arrays.class_names)


EQ_TILT_CENTRE_HZ = 1000.0
EQ_TILT_CAP_DB = 18.0  # the most a tilt lifts or cuts any frequency


def eq_tilted(audio: Any, db_per_octave: float, sample_rate: int) -> Any:
    """Each sound of the batch ``audio`` [batch, samples] (a tensor) through its own random
    tilt, uniform in +-``db_per_octave`` about EQ_TILT_CENTRE_HZ, and peak-normalised again."""
    import tensorflow as tf

    n = tf.shape(audio)[1]
    bins = n // 2 + 1
    hz = tf.linspace(0.0, sample_rate / 2.0, bins)
    octaves = tf.math.log(tf.maximum(hz, 20.0) / EQ_TILT_CENTRE_HZ) / tf.math.log(2.0)
    slope = tf.random.uniform((tf.shape(audio)[0], 1), -db_per_octave, db_per_octave)
    db = tf.clip_by_value(slope * octaves[None, :], -EQ_TILT_CAP_DB, EQ_TILT_CAP_DB)
    spectrum = tf.signal.rfft(audio) * tf.cast(tf.pow(10.0, db / 20.0), tf.complex64)
    out = tf.signal.irfft(spectrum, fft_length=[n])
    return out / tf.maximum(tf.reduce_max(tf.abs(out), axis=1, keepdims=True), 1e-9)


def make_dataset(
    arrays: Arrays,
    batch_size: int,
    *,
    shuffle: bool,
    gain_augment_db: float = 0.0,
    eq_tilt_augment_db: float = 0.0,
    sample_rate: int = 44100,
    seed: int = 0,
    drop_remainder: bool = False,
) -> Any:
    """A ``tf.data.Dataset`` of ``(audio, labels)`` batches (when augmenting: a random tilt,
    then a random gain)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(
        (arrays.audio.astype(np.float32), arrays.labels.astype(np.int64))
    )
    if shuffle:
        ds = ds.shuffle(len(arrays.labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if eq_tilt_augment_db > 0.0:
        tilt = float(eq_tilt_augment_db)
        ds = ds.map(lambda a, y: (eq_tilted(a, tilt, sample_rate), y), num_parallel_calls=1)
    if gain_augment_db > 0.0:
        db = float(gain_augment_db)

        def augment(audio: Any, labels: Any) -> Any:
            gain = tf.pow(10.0, tf.random.uniform((tf.shape(audio)[0], 1), -db, 0.0) / 20.0)
            return audio * gain, labels

        ds = ds.map(augment, num_parallel_calls=1)
    return ds.prefetch(2)


def training_datasets(
    cfg: TrainConfig,
    train_arrays: Arrays,
    val_arrays: Arrays | None,
    *,
    batch_size: int,
    drop_remainder: bool | None = None,
    smoke_test: bool = False,
) -> tuple[Any, Any | None]:
    """(training, validation or None) datasets with the config's augmentations: the pitch
    shifts, then a random tilt per sound and a random gain per batch on the training set.
    ``drop_remainder`` None drops a last partial training batch when there is a full one.
    ``smoke_test`` keeps 2 training batches and 1 validation batch."""
    if cfg.pitch_augment_semitones:
        train_arrays = pitch_shifted(train_arrays, cfg.pitch_augment_semitones, cfg.sample_rate)
        logger.info(
            "pitch shifts %s: %d training sounds",
            cfg.pitch_augment_semitones,
            len(train_arrays.labels),
        )
    train_ds = make_dataset(
        train_arrays,
        batch_size,
        shuffle=True,
        gain_augment_db=cfg.gain_augment_db,
        eq_tilt_augment_db=cfg.eq_tilt_augment_db,
        sample_rate=cfg.sample_rate,
        seed=cfg.seed,
        drop_remainder=(
            len(train_arrays.labels) >= batch_size if drop_remainder is None else drop_remainder
        ),
    )
    val_ds = None
    if val_arrays is not None and len(val_arrays.labels) > 0:
        val_ds = make_dataset(val_arrays, cfg.batch_size, shuffle=False)
    if smoke_test:
        train_ds = train_ds.take(2)
        val_ds = val_ds.take(1) if val_ds is not None else None
    return train_ds, val_ds
