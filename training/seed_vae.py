"""The seed project's spectrogram VAE, kept as a baseline the new model is measured against.

As in the seed: a convolutional VAE on the log-magnitude STFT (n_fft 512, hop 128 here at
44.1 kHz), an 8-dimensional latent, MSE on the log spectrogram plus KL, no class conditioning, and
Griffin-Lim to get audio back. The decoder still takes ``class_index`` (the model contract asks
every decoder for it) and ignores it, unless ``spec_conditional`` is set: then it embeds the class
as the cGAN's decoder does (the bake-off's design b).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dkvae_live import contract

from . import losses, yardstick
from .config import TrainConfig
from .dsp import ConvSTFT, num_frames
from .vae_base import GRADIENT_CLIP_NORM, VAEBase, latent_heads

_DOWN = 16  # four stride-2 stages


def spectrogram_shape(cfg: TrainConfig) -> tuple[int, int]:
    """(frames, bins) of the log-magnitude spectrogram the seed models work on."""
    return num_frames(cfg.num_samples, cfg.spec_hop_length), cfg.spec_n_fft // 2 + 1


def _padded(n: int) -> int:
    return -(-n // _DOWN) * _DOWN


def build_spectrogram_decoder(
    cfg: TrainConfig,
    name: str,
    conditional: bool,
    widths: tuple[int, ...] = (256, 256, 192, 128),
    out_kernel: int = 3,
) -> keras.Model:
    """``(z, class_index) -> log_magnitude [batch, frames, bins]`` with 2-D transposed convs, or
    with ``spec_decoder`` "conv1d" 1-D ones of ``widths`` channels (after a grid of the first
    width) and an ``out_kernel``-frame convolution to the bins."""
    frames, bins = spectrogram_shape(cfg)
    pf, pb = _padded(frames), _padded(bins)
    z = keras.Input((cfg.latent_size,), name=contract.Z)
    class_index = keras.Input((), dtype="int64", name=contract.CLASS_INDEX)
    if conditional:
        emb = layers.Embedding(cfg.num_classes, cfg.embedding_size, name="class_embedding")(
            class_index
        )
        h = layers.Concatenate()([z, emb])
    else:
        h = z
    if cfg.spec_decoder == "conv1d":
        x = layers.Dense((pf // _DOWN) * widths[0], name="to_grid")(h)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Reshape((pf // _DOWN, widths[0]))(x)
        for i, width in enumerate(widths):
            x = layers.Conv1DTranspose(width, 5, strides=2, padding="same", name=f"deconv{i}")(x)
            x = layers.LeakyReLU(0.2)(x)
        x = layers.Conv1D(bins, out_kernel, padding="same", name="to_log_magnitude")(x)
        x = layers.Reshape((pf, bins, 1))(x)
    elif cfg.spec_decoder == "conv2d":
        x = layers.Dense((pf // _DOWN) * (pb // _DOWN) * 64, name="to_grid")(h)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Reshape((pf // _DOWN, pb // _DOWN, 64))(x)
        for i, width in enumerate((64, 32, 16, 8)):
            x = layers.Conv2DTranspose(width, 3, strides=2, padding="same", name=f"deconv{i}")(x)
            x = layers.LeakyReLU(0.2)(x)
        x = layers.Conv2D(1, 3, padding="same", name="to_log_magnitude")(x)
    else:
        raise ValueError(f"spec_decoder must be 'conv1d' or 'conv2d', not {cfg.spec_decoder!r}")
    out = _CropSpectrogram(
        frames, bins, float(cfg.log_offset), conditional, name=contract.LOG_MAGNITUDE_OUTPUT
    )([x, class_index])
    return keras.Model([z, class_index], out, name=name)


class _CropSpectrogram(layers.Layer):
    """Crop the padded grid to ``[frames, bins]``, scaled to the range of log magnitudes.

    An unconditional decoder still consumes ``class_index`` (multiplied by zero) so that the
    exported graph keeps the contract's input.
    """

    def __init__(
        self, frames: int, bins: int, log_offset: float, conditional: bool, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        self.frames, self.bins = frames, bins
        self.log_offset = log_offset
        self.conditional = conditional

    def call(self, inputs):
        x, class_index = inputs
        # scaled to the range of log magnitudes (log_offset .. about +3) so that training starts
        # near the middle of it rather than at 0
        floor = math.log(self.log_offset)
        out = x[:, : self.frames, : self.bins, 0] * (-floor / 3.0) + floor / 2.0
        if not self.conditional:
            out = out + ops.reshape(ops.cast(class_index, "float32"), (-1, 1, 1)) * 0.0
        return out


def downsampling_convs(x: keras.KerasTensor) -> keras.KerasTensor:
    """Four stride-2 3x3 Conv2D stages over a spectrogram ``[batch, frames, bins, channels]``:
    the seed's encoder and its cGAN's discriminator."""
    for i, width in enumerate((16, 32, 64, 64)):
        x = layers.Conv2D(width, 3, strides=2, padding="same", name=f"conv{i}")(x)
        x = layers.LeakyReLU(0.2)(x)
    return x


def build_spectrogram_encoder(cfg: TrainConfig, name: str = "encoder") -> keras.Model:
    """``audio -> (z_mean, z_log_var)`` with 2-D convs over the log-magnitude STFT."""
    frames, bins = spectrogram_shape(cfg)
    audio = keras.Input((cfg.num_samples,), name=contract.AUDIO)
    x = ConvSTFT(cfg.spec_n_fft, cfg.spec_hop_length, log_offset=cfg.log_offset, name="log_stft")(
        audio
    )
    x = layers.Reshape((frames, bins, 1))(x)
    x = downsampling_convs(x)
    return keras.Model(audio, latent_heads(x, 128, cfg.latent_size), name=name)


def log_magnitude(cfg: TrainConfig, audio: tf.Tensor) -> tf.Tensor:
    """The training target: ``log(|STFT| + log_offset)`` ``[batch, frames, bins]``."""
    return tf.math.log(
        losses.stft_magnitude(audio, cfg.spec_n_fft, cfg.spec_hop_length) + cfg.log_offset
    )


def bin_weights(cfg: TrainConfig) -> np.ndarray | None:
    """The log-magnitude MSE's weight of each STFT bin (``spec_loss_weighting``); None: flat."""
    if cfg.spec_loss_weighting == "flat":
        return None
    if cfg.spec_loss_weighting != "mel":
        raise ValueError(
            f"spec_loss_weighting must be 'flat' or 'mel', got {cfg.spec_loss_weighting!r}"
        )
    hz = np.fft.rfftfreq(cfg.spec_n_fft, 1.0 / cfg.sample_rate)
    density = 1.0 / (700.0 + hz)  # d(mel)/d(Hz), up to a constant
    return (density / density.mean()).astype(np.float32)


class SeedVAE(VAEBase):
    """The seed's VAE: MSE on the log spectrogram + KL, and optionally issue 18's mel distance on
    the decoded magnitudes (``spec_mel_db_weight``)."""

    def __init__(self, cfg: TrainConfig, **kwargs: object) -> None:
        if cfg.encoder_stage and cfg.adversarial_weight > 0.0:
            raise ValueError("encoder_stage trains the encoder alone; adversarial_weight must be 0")
        adversarial = ("adversarial", "feature_matching", "d_loss")
        names = (
            "loss",
            "log_mse",
            "mel_db",
            "kl",
            *(adversarial if cfg.adversarial_weight else ()),
        )
        super().__init__(cfg, names, **kwargs)
        self.encoder = build_spectrogram_encoder(cfg)
        self.decoder = build_spectrogram_decoder(cfg, "decoder", conditional=cfg.spec_conditional)
        self._bin_weights = bin_weights(cfg)
        self._mel_filterbank = yardstick.mel_filterbank(
            cfg.sample_rate, cfg.spec_n_fft, yardstick.MEL_BANDS
        )
        self.discriminator: keras.Model | None = None
        if cfg.encoder_stage:
            self.decoder.trainable = False
        if cfg.adversarial_weight > 0.0:
            from .adversarial import build_discriminator

            self.encoder.trainable = False  # the decoder alone learns in this stage
            self.discriminator = build_discriminator(cfg)
            self.d_optimizer = keras.optimizers.Adam(
                cfg.discriminator_learning_rate, beta_1=0.5, beta_2=0.9
            )

    def compute_losses(
        self, audio: tf.Tensor, labels: tf.Tensor, training: bool
    ) -> dict[str, tf.Tensor]:
        values, out, target = self._reconstruction(audio, labels, training)
        if self.discriminator is not None:
            from .adversarial import discriminator_loss

            terms, _, real, fake = self._adversarial(out, target, training)
            values.update(terms, d_loss=discriminator_loss(real, fake))
        return values

    def _reconstruction(
        self, audio: tf.Tensor, labels: tf.Tensor, training: bool
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
        """The losses that fit the sound, the decoder's log magnitudes and their target."""
        out, z_mean, z_log_var = self((audio, labels), training=training)
        magnitude = losses.stft_magnitude(audio, self.cfg.spec_n_fft, self.cfg.spec_hop_length)
        target = tf.math.log(magnitude + self.cfg.log_offset)
        error = tf.square(out - target)
        mse = tf.reduce_mean(error, axis=[1, 2])
        fit = mse
        if self._bin_weights is not None:
            fit = tf.reduce_mean(error * self._bin_weights, axis=[1, 2])
        mel_db = losses.heard_mel_distance(
            magnitude,
            tf.exp(out),
            self._mel_filterbank,
            yardstick.MEL_FLOOR_DB,
            yardstick.MEL_FRAME_RANGE_DB,
        )
        if self.cfg.spec_mel_db_weight > 0.0:
            fit = fit + self.cfg.spec_mel_db_weight * mel_db
        kl = losses.kl_divergence(z_mean, z_log_var)
        values = {"loss": fit + self.cfg.kl_weight * kl, "log_mse": mse, "mel_db": mel_db, "kl": kl}
        return values, out, target

    def _adversarial(
        self, out: tf.Tensor, target: tf.Tensor, training: bool
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor, list[tf.Tensor], list[tf.Tensor]]:
        """The decoder's adversarial terms (``loss`` stays the reconstruction's, so validation
        losses compare with the stage before), their weighted share of its objective, and the
        discriminator's outputs on the real and the decoded spectrograms."""
        from .adversarial import generator_losses

        assert self.discriminator is not None
        real = self.discriminator(target, training=training)
        fake = self.discriminator(out, training=training)
        adversarial, matching = generator_losses(real, fake)
        terms = {"adversarial": adversarial, "feature_matching": matching}
        return terms, self.cfg.adversarial_weight * (adversarial + matching), real, fake

    def train_step(self, data):
        if self.discriminator is None:
            return super().train_step(data)
        from .adversarial import discriminator_loss

        audio, labels = data
        with tf.GradientTape() as tape:
            values, out, target = self._reconstruction(audio, labels, training=True)
            terms, share, _, _ = self._adversarial(out, target, training=True)
            objective = tf.reduce_mean(values["loss"]) + share
        g_vars = self.decoder.trainable_variables
        grads, _ = tf.clip_by_global_norm(tape.gradient(objective, g_vars), GRADIENT_CLIP_NORM)
        self.optimizer.apply_gradients(zip(grads, g_vars, strict=True))
        with tf.GradientTape() as d_tape:
            real = self.discriminator(target, training=True)
            fake = self.discriminator(tf.stop_gradient(out), training=True)
            d_loss = discriminator_loss(real, fake)
        d_vars = self.discriminator.trainable_variables
        d_grads, _ = tf.clip_by_global_norm(d_tape.gradient(d_loss, d_vars), GRADIENT_CLIP_NORM)
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars, strict=True))
        self.after_train_step()
        return self._update({**values, **terms, "d_loss": d_loss})
