"""The adversarial stage of a spectrogram decoder (issue 18; RAVE's second stage, on log
magnitudes): multi-scale discriminators, their hinge loss and the decoder's feature matching.

Each scale sees the log-magnitude spectrogram averaged down by 2 ** scale in time and frequency,
through four stride-2 convs (the seed's encoder's) and a 3x3 conv to a map of scores: a map, not
one score, so that it judges patches (a transient's edge, a partial's line, the grain of a
noise band) rather than the whole sound, which the reconstruction losses already fit.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers

from .config import TrainConfig
from .seed_vae import spectrogram_shape

WIDTHS = (16, 32, 64, 64)


def build_discriminator(cfg: TrainConfig) -> keras.Model:
    """``log_magnitude [batch, frames, bins] -> [features..., scores]`` for every scale, in
    order: ``len(WIDTHS)`` feature maps, then the score map, per scale."""
    frames, bins = spectrogram_shape(cfg)
    spec = keras.Input((frames, bins), name="log_magnitude")
    floor = math.log(cfg.log_offset)
    # about -1..1 for silence..full scale, as the decoder's last layer scales its output
    x0 = layers.Reshape((frames, bins, 1))((spec - floor / 2.0) / (-floor / 3.0))
    outputs = []
    for scale in range(cfg.discriminator_scales):
        x = x0 if scale == 0 else layers.AveragePooling2D(2**scale, padding="same")(x0)
        for i, width in enumerate(WIDTHS):
            x = layers.Conv2D(width, 3, strides=2, padding="same", name=f"d{scale}_conv{i}")(x)
            x = layers.LeakyReLU(0.2)(x)
            outputs.append(x)
        outputs.append(layers.Conv2D(1, 3, padding="same", name=f"d{scale}_score")(x))
    return keras.Model(spec, outputs, name="discriminator")


def _scales(outputs: list[tf.Tensor]) -> list[tuple[list[tf.Tensor], tf.Tensor]]:
    per = len(WIDTHS) + 1
    return [(outputs[i : i + per - 1], outputs[i + per - 1]) for i in range(0, len(outputs), per)]


def discriminator_loss(real: list[tf.Tensor], fake: list[tf.Tensor]) -> tf.Tensor:
    """Hinge loss, mean over scales: real scores pushed over 1, generated ones under -1."""
    terms = [
        tf.reduce_mean(tf.nn.relu(1.0 - r)) + tf.reduce_mean(tf.nn.relu(1.0 + f))
        for (_, r), (_, f) in zip(_scales(real), _scales(fake), strict=True)
    ]
    return tf.add_n(terms) / len(terms)


def generator_losses(real: list[tf.Tensor], fake: list[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """``(adversarial, feature_matching)``, means over scales: the generated scores' hinge, and
    the L1 between the discriminator's features of the real and the generated spectrogram."""
    adversarial: list[tf.Tensor] = []
    matching: list[tf.Tensor] = []
    for (real_features, _), (fake_features, fake_score) in zip(
        _scales(real), _scales(fake), strict=True
    ):
        adversarial.append(-tf.reduce_mean(fake_score))
        matching.extend(
            tf.reduce_mean(tf.abs(tf.stop_gradient(r) - f))
            for r, f in zip(real_features, fake_features, strict=True)
        )
    return tf.add_n(adversarial) / len(adversarial), tf.add_n(matching) / len(matching)
