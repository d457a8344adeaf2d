"""The seed project's conditional GAN, kept as a baseline.

Generator and discriminator are both conditioned on the drum class; the loss is binary
cross-entropy. As in the seed it works on the log-magnitude STFT (so the exported generator has
``output_kind`` ``log_magnitude`` and the daemon inverts it with Griffin-Lim). The seed reported
that its discriminator always won; this is kept for comparison, not for play.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from .config import TrainConfig
from .seed_vae import (
    build_spectrogram_decoder,
    downsampling_convs,
    log_magnitude,
    spectrogram_shape,
)
from .vae_base import LossTrackingModel


def build_discriminator(cfg: TrainConfig) -> keras.Model:
    """``(log_magnitude, class_index) -> logit`` (real vs generated)."""
    frames, bins = spectrogram_shape(cfg)
    spec = keras.Input((frames, bins), name="log_magnitude")
    class_index = keras.Input((), dtype="int64", name="class_index")
    emb = layers.Embedding(cfg.num_classes, bins, name="class_embedding")(class_index)
    x = layers.Add()([spec, layers.Reshape((1, bins))(emb)])  # class as a learned spectral bias
    x = layers.Reshape((frames, bins, 1))(x)
    x = downsampling_convs(x)
    x = layers.GlobalAveragePooling2D()(x)
    logit = layers.Dense(1, name="logit")(x)
    return keras.Model([spec, class_index], logit, name="discriminator")


class ConditionalGAN(LossTrackingModel):
    """Alternating discriminator / generator updates with BCE on logits."""

    def __init__(self, cfg: TrainConfig, **kwargs: object) -> None:
        super().__init__(cfg, ("loss", "d_loss", "g_loss"), **kwargs)
        self.decoder = build_spectrogram_decoder(cfg, "decoder", conditional=True)
        self.discriminator = build_discriminator(cfg)
        self.encoder = None
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)
        self.d_optimizer = keras.optimizers.Adam(cfg.learning_rate, beta_1=0.5)

    def call(self, inputs, training=False):
        z, labels = inputs
        return self.decoder([z, labels], training=training)

    def _gan_losses(
        self, audio: tf.Tensor, labels: tf.Tensor, training: bool
    ) -> tuple[tf.Tensor, tf.Tensor]:
        real = log_magnitude(self.cfg, audio)
        z = tf.random.normal((tf.shape(audio)[0], self.cfg.latent_size))
        fake = self.decoder([z, labels], training=training)
        real_logit = self.discriminator([real, labels], training=training)
        fake_logit = self.discriminator([fake, labels], training=training)
        d_loss = self.bce(tf.ones_like(real_logit), real_logit) + self.bce(
            tf.zeros_like(fake_logit), fake_logit
        )
        g_loss = self.bce(tf.ones_like(fake_logit), fake_logit)
        return d_loss, g_loss

    def train_step(self, data):
        audio, labels = data
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            d_loss, g_loss = self._gan_losses(audio, labels, training=True)
        d_vars = self.discriminator.trainable_variables
        g_vars = self.decoder.trainable_variables
        self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars, strict=True))
        self.optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars, strict=True))
        return self._update({"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss})

    def test_step(self, data):
        audio, labels = data
        d_loss, g_loss = self._gan_losses(audio, labels, training=False)
        return self._update({"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss})
