"""Fit an exported model's class latents on a bank's training split; store them in its decoder.

The latents come from the exported encoder itself (through the daemon's loader), so they are
exactly what the daemon would compute for those sounds. See :mod:`dkvae_live.class_latents`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from dkvae_live import class_latents, contract
from dkvae_live.model import Decoder, Encoder, ModelError

logger = logging.getLogger(__name__)


def with_metadata(path: Path, key: str, value: str, out: Path) -> None:
    """Write ``path`` to ``out`` with one ``metadata_props`` entry set."""
    import onnx

    proto = onnx.load(str(path))
    for entry in proto.metadata_props:
        if entry.key == key:
            entry.value = value
            break
    else:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(out))


def write_metadata(decoder_path: Path, key: str, value: str) -> None:
    """Set one metadata entry of ``decoder_path`` in place, through a temporary copy that the
    daemon must load first: never leave a decoder that the daemon refuses."""
    tmp = decoder_path.with_name(decoder_path.name + ".tmp")
    with_metadata(decoder_path, key, value, tmp)
    try:
        Decoder(tmp)
    except ModelError:
        tmp.unlink()
        raise
    os.replace(tmp, decoder_path)


def add_class_latents(
    model_dir: Path, audio: np.ndarray, labels: np.ndarray, batch: int = 32
) -> dict[str, class_latents.ClassLatent]:
    """Encode ``audio`` (the training split) with the model's encoder, fit each class, write the
    result into ``decoder.onnx`` and check that the daemon loads it."""
    decoder_path = Path(model_dir) / contract.DECODER_FILE
    info = Decoder(decoder_path).info
    encoder = Encoder(Path(model_dir) / contract.ENCODER_FILE, info)
    z = np.concatenate([encoder.encode(audio[i : i + batch]) for i in range(0, len(audio), batch)])
    fitted = class_latents.fit(z, labels, info.class_names)
    write_metadata(decoder_path, contract.CLASS_LATENTS, class_latents.to_json(fitted))
    logger.info(
        "class latents of %s from %d sounds: %s",
        decoder_path,
        len(labels),
        ", ".join(f"{n} ({c.sounds})" for n, c in fitted.items()),
    )
    return fitted


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
