"""The project's class-conditional VAE: log-STFT encoder, waveform decoder with a fixed iSTFT.

Decoder (a separate ``keras.Model`` named ``decoder``; inputs ``z`` and ``class_index``, output
``audio`` ``[batch, num_samples]``):

* ``z`` and a learned class embedding make a conditioning vector; a Dense layer lays it out on a
  coarse time grid, and three (upsample x2, Conv1D) stages bring it to the STFT frame rate, each
  stage adding a projection of the conditioning vector (so class and latent steer every scale).
* At frame rate two 1x1 heads predict log-magnitude and phase (``exp``/``cos``/``sin``, as in
  Vocos), and a fixed-weight ``conv_transpose`` (:class:`~.dsp.ConvISTFT`) turns them into audio:
  no Griffin-Lim, and the exported graph outputs the waveform.
* Low end: a third head predicts ``lowband_per_hop`` waveform samples per hop (a signal at
  ``sample_rate * lowband_per_hop / hop_length`` Hz) that a fixed band-limited upsampler adds to
  the output. A kick's body is a slow, phase-coherent sine; predicting it as a waveform is far
  easier than through short-window STFT phases, and the loss checks it in the time domain.

All channels live at frame rate or below, and the STFT is small (256 / hop 128 by default), so one
1 s hit costs well under 2 ms on one core in onnxruntime.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dkvae_live import contract

from . import losses
from .config import TrainConfig
from .dsp import ConvISTFT, ConvSTFT, Upsample, num_frames
from .vae_base import VAEBase, latent_heads

NUM_UPSAMPLES = 3


def _frames(cfg: TrainConfig) -> tuple[int, int]:
    """(coarse frames, decoder frames): decoder frames cover the centred STFT of the output."""
    factor = 2**NUM_UPSAMPLES
    coarse = math.ceil(num_frames(cfg.num_samples, cfg.hop_length) / factor)
    return coarse, coarse * factor


def phase_bins(cfg: TrainConfig) -> int:
    """Bins (from 0) whose phase the decoder predicts; the bins above get fixed random phases."""
    full = synthesis_bins(cfg)
    if cfg.phase_max_frequency <= 0:
        return full
    return min(full, math.ceil(cfg.phase_max_frequency * cfg.n_fft / cfg.sample_rate) + 1)


def synthesis_bins(cfg: TrainConfig) -> int:
    """STFT bins the decoder predicts (the ones above are zero: no energy above that frequency)."""
    full = cfg.n_fft // 2 + 1
    if cfg.max_frequency <= 0:
        return full
    return min(full, math.ceil(cfg.max_frequency * cfg.n_fft / cfg.sample_rate) + 1)


def decoder_inputs(
    cfg: TrainConfig,
) -> tuple[keras.KerasTensor, keras.KerasTensor, keras.KerasTensor]:
    """The contract's decoder inputs ``z`` and ``class_index``, and the condition both
    decoders (this module's and ``ddsp``'s) are built on: latent and class embedding through
    two dense layers."""
    z = keras.Input((cfg.latent_size,), name=contract.Z)
    class_index = keras.Input((), dtype="int64", name=contract.CLASS_INDEX)
    emb = layers.Embedding(cfg.num_classes, cfg.embedding_size, name="class_embedding")(class_index)
    cond = layers.Concatenate(name="cond_in")([z, emb])
    cond = layers.Dense(256, name="cond_dense1")(cond)
    cond = layers.LeakyReLU(0.2)(cond)
    cond = layers.Dense(256, name="cond_dense2")(cond)
    cond = layers.LeakyReLU(0.2)(cond)
    return z, class_index, cond


def conditioned_trunk(cfg: TrainConfig, cond: keras.KerasTensor, coarse: int) -> keras.KerasTensor:
    """``cond`` (latent and class) onto a grid of ``coarse`` frames, then one (upsample x2,
    Conv1D) stage per ``cfg.channels`` with the condition added at every stage: the decoders'
    common trunk (this module's and ``ddsp``'s)."""
    x = layers.Dense(coarse * cfg.coarse_channels, name="to_grid")(cond)
    x = layers.Reshape((coarse, cfg.coarse_channels))(x)
    for stage, width in enumerate(cfg.channels):
        if stage > 0:
            x = layers.UpSampling1D(2, name=f"up{stage}")(x)
        x = layers.Conv1D(width, cfg.kernel_sizes[stage], padding="same", name=f"conv{stage}")(x)
        bias = layers.Dense(width, name=f"cond_bias{stage}")(cond)
        x = layers.Add(name=f"condition{stage}")([x, layers.Reshape((1, width))(bias)])
        x = layers.LeakyReLU(0.2)(x)
    return x


def build_decoder(cfg: TrainConfig) -> keras.Model:
    """The conditional waveform decoder ``(z, class_index) -> audio``."""
    if len(cfg.channels) != NUM_UPSAMPLES + 1:
        raise ValueError(f"channels must list {NUM_UPSAMPLES + 1} widths, got {cfg.channels}")
    if cfg.hop_length % cfg.lowband_per_hop:
        raise ValueError("hop_length must be a multiple of lowband_per_hop")
    coarse, frames = _frames(cfg)
    bins = synthesis_bins(cfg)

    z, class_index, cond = decoder_inputs(cfg)

    x = conditioned_trunk(cfg, cond, coarse)
    if cfg.residual:
        width = cfg.channels[-1]
        res = layers.Conv1D(width, 3, padding="same", name="res_conv")(x)
        x = layers.Add(name="res_add")([x, layers.LeakyReLU(0.2)(res)])
    # one 1x1 head: log-magnitude (bins), phase (phase bins), low-band samples (lowband_per_hop)
    # start quiet: small weights and a log-magnitude bias of -6 (the exp would otherwise make the
    # first outputs loud broadband noise and the first steps unstable)
    n_heads = bins + phase_bins(cfg) + cfg.lowband_per_hop
    head_bias = np.zeros(n_heads, np.float32)
    head_bias[:bins] = -6.0
    heads = layers.Conv1D(
        n_heads,
        1,
        name="heads",
        kernel_initializer=keras.initializers.VarianceScaling(0.1),
        bias_initializer=keras.initializers.Constant(head_bias),
    )(x)
    audio = _Synthesis(cfg, frames, name="synthesis")(heads)
    return keras.Model([z, class_index], audio, name="decoder")


class _Synthesis(layers.Layer):
    """log-magnitude, phase, low band -> waveform (fixed iSTFT + fixed upsampler).

    Only the lower ``phase_bins`` have a predicted phase (cos/sin are the dearest operations in
    the graph); the noise-like bins above get a fixed pseudo-random phase per frame and bin, so
    their magnitudes alone shape them (as a filtered-noise synthesiser does).
    """

    def __init__(self, cfg: TrainConfig, frames: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.max_log_magnitude = cfg.max_log_magnitude
        self.frames = frames
        self.bins = synthesis_bins(cfg)
        self.phase_bins = phase_bins(cfg)
        rng = np.random.default_rng(1234)
        angles = rng.uniform(-np.pi, np.pi, (frames, self.bins - self.phase_bins))
        self._fixed_cos = np.cos(angles).astype(np.float32)
        self._fixed_sin = np.sin(angles).astype(np.float32)
        self.phase_advance = cfg.phase_advance
        self.remove_dc = cfg.remove_dc
        # The phase a stationary sinusoid at bin k has in frame t: 2 pi k t hop / n_fft. Adding
        # it makes a prediction that is smooth over frames (what convolutions give) a steady
        # tone; without it, odd bins alternate sign every frame (hop = n_fft / 2) and smooth
        # predictions come out as combs at multiples of the frame rate.
        t = np.arange(frames)[:, None]
        k = np.arange(self.phase_bins)[None, :]
        advance = 2.0 * np.pi * ((k * t * cfg.hop_length) % cfg.n_fft) / cfg.n_fft
        self._advance_cos = np.cos(advance).astype(np.float32)
        self._advance_sin = np.sin(advance).astype(np.float32)
        self.lowband_per_hop = cfg.lowband_per_hop
        self.istft = ConvISTFT(cfg.n_fft, cfg.hop_length, cfg.num_samples, self.bins)
        self.upsample = Upsample(cfg.hop_length // cfg.lowband_per_hop, cfg.num_samples)

    def call(self, heads):
        bins, pb = self.bins, self.phase_bins
        log_mag, phase = heads[..., :bins], heads[..., bins : bins + pb]
        lowband = heads[..., bins + pb :]
        mag = ops.exp(ops.minimum(log_mag, self.max_log_magnitude))
        low_mag, high_mag = mag[..., :pb], mag[..., pb:]
        cos, sin = ops.cos(phase), ops.sin(phase)
        if self.phase_advance:
            ac = ops.convert_to_tensor(self._advance_cos)
            asin = ops.convert_to_tensor(self._advance_sin)
            cos, sin = cos * ac - sin * asin, sin * ac + cos * asin
        re = ops.concatenate(
            [low_mag * cos, high_mag * ops.convert_to_tensor(self._fixed_cos)], axis=-1
        )
        im = ops.concatenate(
            [low_mag * sin, high_mag * ops.convert_to_tensor(self._fixed_sin)], axis=-1
        )
        audio = self.istft(ops.concatenate([re, im], axis=-1))
        low = ops.reshape(lowband, (-1, self.frames * self.lowband_per_hop))
        out = audio + self.upsample(low)
        if self.remove_dc:
            # a drum hit has no DC; an offset left by the low-band head is pure error (and
            # lingers in the silent tail)
            out = out - ops.mean(out, axis=1, keepdims=True)
        return out


def build_encoder(cfg: TrainConfig) -> keras.Model:
    """``audio [batch, num_samples] -> (z_mean, z_log_var)`` from a fixed conv log-STFT."""
    audio = keras.Input((cfg.num_samples,), name=contract.AUDIO)
    x = ConvSTFT(cfg.enc_n_fft, cfg.enc_hop_length, log_offset=1e-5, name="log_stft")(audio)
    x = layers.Rescaling(0.2, offset=0.8, name="log_stft_scale")(x)  # about [-1.5, 2]
    x = layers.Dense(256, name="bins_in")(x)  # per frame: mix frequency bins to channels
    x = layers.LeakyReLU(0.2)(x)
    for i, width in enumerate(cfg.enc_channels):
        x = layers.Conv1D(width, 5, strides=2, padding="same", name=f"enc_conv{i}")(x)
        x = layers.LeakyReLU(0.2)(x)
    return keras.Model(audio, latent_heads(x, 256, cfg.latent_size), name="encoder")


class ConditionalVAE(VAEBase):
    """Encoder + decoder with the training objective; ``fit`` takes ``(audio, labels)`` batches."""

    def __init__(
        self, cfg: TrainConfig, decoder: keras.Model | None = None, **kwargs: object
    ) -> None:
        """``decoder``: another decoder of the same interface (``ddsp``); default the
        STFT decoder of this module."""
        mel = ("mel",) if cfg.mel_weight > 0 else ()
        super().__init__(cfg, ("loss", "mstft", *mel, "log_mse", "lowband", "kl", "beta"), **kwargs)
        self.encoder = build_encoder(cfg)
        self.decoder = decoder if decoder is not None else build_decoder(cfg)
        self.step_counter = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="step_counter", dtype="float32"
        )

    def beta(self) -> tf.Tensor:
        if self.cfg.kl_warmup_steps <= 0:
            return tf.constant(self.cfg.kl_weight)
        ramp = tf.minimum(1.0, self.step_counter / float(self.cfg.kl_warmup_steps))
        return self.cfg.kl_weight * ramp

    def compute_losses(
        self, audio: tf.Tensor, labels: tf.Tensor, training: bool
    ) -> dict[str, tf.Tensor]:
        """Per-example losses ``[batch]`` and the weighted total under ``"loss"``."""
        cfg = self.cfg
        output, z_mean, z_log_var = self((audio, labels), training=training)
        zero = tf.zeros(tf.shape(audio)[:1], tf.float32)
        mstft = losses.multi_resolution_stft_loss(audio, output, cfg.stft_sizes)
        mel = (
            losses.log_mel_l1(audio, output, cfg.mel_sizes, cfg.sample_rate, cfg.mel_bands)
            if cfg.mel_weight > 0
            else zero
        )
        log_mse = (
            losses.log_spectrogram_mse(
                audio, output, cfg.spec_n_fft, cfg.spec_hop_length, cfg.log_offset
            )
            if cfg.log_mse_weight > 0
            else zero
        )
        low = losses.lowband_l1(audio, output, cfg.lowband_factor)
        kl = losses.kl_divergence(z_mean, z_log_var, cfg.free_bits)
        # validation always weighs KL fully, so val_loss is comparable across the warm-up
        beta = self.beta() if training else tf.constant(cfg.kl_weight)
        total = (
            cfg.mstft_weight * mstft
            + cfg.mel_weight * mel
            + cfg.log_mse_weight * log_mse
            + cfg.lowband_weight * low
            + beta * kl
        )
        out = {
            "loss": total,
            "mstft": mstft,
            "log_mse": log_mse,
            "lowband": low,
            "kl": kl,
            "beta": tf.fill(tf.shape(total), beta),
        }
        if cfg.mel_weight > 0:
            out["mel"] = mel
        return out

    def after_train_step(self) -> None:
        self.step_counter.assign_add(1.0)
