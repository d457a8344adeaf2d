"""What the VAEs (``vae``, ``seed_vae``, ``ddsp``) and the cGAN share: mean trackers of their
per-example losses, and for the VAEs the latent heads of the encoder, the encoder-sample-decoder
call and the training step."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import layers

from dkvae_live import contract

from .config import TrainConfig

GRADIENT_CLIP_NORM = 5.0


def latent_heads(
    features: keras.KerasTensor, width: int, latent_size: int
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """An encoder's last layers: its features flattened through one dense layer of ``width``
    to ``(z_mean, z_log_var)``. ``z_log_var`` starts at -4 everywhere (a narrow posterior), so
    early training is not drowned in sampling noise."""
    x = layers.Flatten()(features)
    x = layers.Dense(width, name="enc_dense")(x)
    x = layers.LeakyReLU(0.2)(x)
    z_mean = layers.Dense(latent_size, name=contract.Z_MEAN)(x)
    z_log_var = layers.Dense(
        latent_size,
        name=contract.Z_LOG_VAR,
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(-4.0),
    )(x)
    return z_mean, z_log_var


class LossTrackingModel(keras.Model):
    """A model whose metrics are the batch means of its named losses."""

    def __init__(self, cfg: TrainConfig, loss_names: Sequence[str], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.cfg = cfg
        self.trackers = {n: keras.metrics.Mean(name=n) for n in loss_names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _update(self, values: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        for name, value in values.items():
            self.trackers[name].update_state(tf.reduce_mean(value))
        return {name: t.result() for name, t in self.trackers.items()}


class VAEBase(LossTrackingModel):
    """Encoder, sampled latent, decoder; ``fit`` takes ``(audio, labels)`` batches.

    A subclass sets ``encoder`` and ``decoder`` and defines ``compute_losses(audio, labels,
    training)``: per-example losses ``[batch]``, the weighted total under ``"loss"``.
    """

    encoder: keras.Model
    decoder: keras.Model

    def call(self, inputs, training=False):
        audio, labels = inputs
        z_mean, z_log_var = self.encoder(audio, training=training)
        z = z_mean
        if training:
            z = z_mean + tf.exp(0.5 * z_log_var) * tf.random.normal(tf.shape(z_mean))
        return self.decoder([z, labels], training=training), z_mean, z_log_var

    def compute_losses(
        self, audio: tf.Tensor, labels: tf.Tensor, training: bool
    ) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def after_train_step(self) -> None:
        """Called after each optimizer step (the KL warm-up counts steps here)."""

    def train_step(self, data):
        audio, labels = data
        with tf.GradientTape() as tape:
            values = self.compute_losses(audio, labels, training=True)
            loss = tf.reduce_mean(values["loss"])
        grads = tape.gradient(loss, self.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, GRADIENT_CLIP_NORM)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        self.after_train_step()
        return self._update(values)

    def test_step(self, data):
        audio, labels = data
        return self._update(self.compute_losses(audio, labels, training=False))
