"""Fit an exported model's class latents and class guess on a bank's training split; store them
in its decoder.

The latents come from the exported encoder itself (through the daemon's loader), so they are
exactly what the daemon would compute for those sounds. See :mod:`dkvae_live.class_latents` and
:mod:`dkvae_live.class_guess`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dkvae_live import class_guess, class_latents, contract
from dkvae_live.drum_features import features
from dkvae_live.model import Decoder, Encoder, ModelError

logger = logging.getLogger(__name__)


def with_metadata(path: Path, entries: Mapping[str, str], out: Path) -> None:
    """Write ``path`` to ``out`` with these ``metadata_props`` entries set."""
    import onnx

    proto = onnx.load(str(path))
    for key, value in entries.items():
        for entry in proto.metadata_props:
            if entry.key == key:
                entry.value = value
                break
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(proto, str(out))


def write_metadata(decoder_path: Path, entries: Mapping[str, str]) -> None:
    """Set metadata entries of ``decoder_path`` in place, all or none, through a temporary copy
    that the daemon must load first: never leave a decoder that the daemon refuses."""
    tmp = decoder_path.with_name(decoder_path.name + ".tmp")
    with_metadata(decoder_path, entries, tmp)
    try:
        Decoder(tmp)
    except ModelError:
        tmp.unlink()
        raise
    os.replace(tmp, decoder_path)


def add_class_latents(
    model_dir: Path, audio: np.ndarray, labels: np.ndarray, batch: int = 32
) -> dict[str, class_latents.ClassLatent]:
    """Encode ``audio`` (the training split) with the model's encoder, fit each class's latents
    and the class guess (:func:`fit_class_guess`), write them into ``decoder.onnx`` and check
    that the daemon loads it."""
    decoder_path = Path(model_dir) / contract.DECODER_FILE
    info = Decoder(decoder_path).info
    encoder = Encoder(Path(model_dir) / contract.ENCODER_FILE, info)
    z = np.concatenate([encoder.encode(audio[i : i + batch]) for i in range(0, len(audio), batch)])
    fitted = class_latents.fit(z, labels, info.class_names)
    entries = {contract.CLASS_LATENTS: class_latents.to_json(fitted)}
    guess = fit_class_guess(audio, labels, info.sample_rate, len(info.class_names))
    if guess is not None:
        entries[contract.CLASS_GUESS] = class_guess.to_json(guess)
    write_metadata(decoder_path, entries)
    logger.info(
        "class latents of %s from %d sounds: %s",
        decoder_path,
        len(labels),
        ", ".join(f"{n} ({c.sounds})" for n, c in fitted.items()),
    )
    return fitted


# The logistic regression's inverse regularisation, chosen on data/bank-v3's validation split:
# 0.01, 0.03, 0.1, 0.3, 1 labelled 71, 74, 69, 67, 64 % of its sounds right.
GUESS_C = 0.03


def fit_class_guess(
    audio: np.ndarray, labels: np.ndarray, sample_rate: int, classes: int
) -> class_guess.ClassGuess | None:
    """A multinomial logistic regression on the standardised drum features of ``audio`` (the
    training split), every class weighing the same; silent sounds left out. None with fewer
    than two classes to tell apart."""
    from sklearn.linear_model import LogisticRegression

    feats, silent = features(audio, sample_rate)
    x, y = np.asarray(feats[~silent], np.float64), np.asarray(labels)[~silent]
    if len(np.unique(y)) < 2:
        return None
    mean = x.mean(axis=0)
    scale = np.maximum(x.std(axis=0), 1e-3)  # a constant feature must not blow up
    model = LogisticRegression(C=GUESS_C, max_iter=5000, class_weight="balanced")
    model.fit((x - mean) / scale, y)
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # one row: the second class's score against the first's 0
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
    weights = np.zeros((classes, x.shape[1]))
    bias = np.full(classes, -1e3)  # a class with no training sound is never guessed
    weights[model.classes_], bias[model.classes_] = coef, intercept
    return class_guess.ClassGuess(mean, scale, weights, bias)


def training_split(
    model_dir: Path, bank: Path, cache_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(audio, labels) of the training split of ``bank``, read at the rate of the model in
    ``model_dir``, in its class order: what the class latents and the axes are fitted on."""
    from dkvae_training.bank import load_split

    info = Decoder(Path(model_dir) / contract.DECODER_FILE).info
    train = load_split(
        bank,
        "train",
        sample_rate=info.sample_rate,
        num_samples=info.num_samples,
        cache_dir=cache_dir,
        class_names=info.class_names,
    )
    return train.audio, train.labels


def add_class_latents_from_bank(
    model_dir: Path, bank: Path, cache_dir: Path | None = None
) -> dict[str, class_latents.ClassLatent]:
    """:func:`add_class_latents` on the training split of ``bank``, read at the model's rate."""
    return add_class_latents(model_dir, *training_split(model_dir, bank, cache_dir))
