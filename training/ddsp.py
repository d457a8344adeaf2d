"""A percussive DDSP decoder: damped, gliding sinusoids + band-shaped noise + a learned transient.

The model kind ``ddsp`` is the project's conditional VAE (the same log-STFT encoder, KL term and
training loop as ``vae``) with a decoder that drives a small synthesiser instead of an iSTFT.
Its decoder (a ``keras.Model`` named ``decoder``; inputs ``z`` and ``class_index``, output
``audio [batch, num_samples]``) follows ``docs/model-contract.md`` with ``output_kind``
``waveform``, so the daemon plays it unchanged.

* **Trunk**: ``z`` and a class embedding make a conditioning vector; a Dense layer lays it out on
  a coarse time grid and three (upsample x2, Conv1D) stages bring it to the envelope frame rate
  (``ddsp_hop_length`` samples a frame), each stage adding a projection of the conditioning.
* **Sinusoids** (:class:`SineBank`): ``ddsp_sines`` partials, each with its own frequency range
  around a fixed centre (log-spaced from ``ddsp_sine_min_hz`` to ``ddsp_sine_max_hz``), so a
  partial only ever moves locally: gradient descent on a sinusoid's frequency through a spectral
  loss only works near the answer. Per hit and partial the conditioning vector sets an end
  frequency, a start phase and a downward pitch glide (a kick's pitch drop) made of exponentials
  with fixed rates, so the phase is one matrix product with a fixed basis of functions of time.
  The trunk sets each partial's amplitude per frame (log domain, so an exponential decay is a
  straight line), linearly interpolated between frames. The partials are rendered at
  ``sample_rate / ddsp_sine_downsample`` (``Sin`` is the dearest operation in onnxruntime) and
  brought to the output rate by the fixed band-limited upsampler of :mod:`.dsp`.
* **Noise** (:class:`NoiseBands`): a fixed white noise split into ``ddsp_noise_bands`` bands on
  the mel scale (a constant of the graph, so rendering is deterministic); the trunk sets each
  band's gain per frame, linearly interpolated. Filtering fixed noise by time-varying band gains
  is then one batched matrix product against that constant: cheaper than an iSTFT of noise
  frames, and the same filtered-noise synthesis.
* **Transient** (:class:`Transient`): the first ``ddsp_transient_ms`` are added from a learned
  dictionary of ``ddsp_transient_atoms`` waveforms, mixed by weights from the conditioning
  vector: the stick's click and a snare's crack, which neither partials nor smooth noise make.

Training adds to the ``vae`` losses a log-mel L1 (``mel_weight``): its overlapping triangular
bands give a partial a gradient towards the energy in the next band, where a fine STFT gives none.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from . import losses
from .config import TrainConfig
from .dsp import Upsample
from .vae import ConditionalVAE, conditioned_trunk, decoder_inputs

NUM_UPSAMPLES = 3
#: Log-amplitude (partials) and log-gain (noise bands) are capped here before ``exp``: the
#: sounds are peak-normalised, and an unbounded ``exp`` makes early steps blow up.
MAX_LOG_LEVEL = 1.0
#: Initial log levels: quiet (not silent: the export refuses silence) until training sets them.
INIT_SINE_LOG_AMP = -4.0
INIT_NOISE_LOG_GAIN = -5.0
#: Partials are kept below this fraction of their rendering rate (no aliasing from glides).
MAX_SINE_FRACTION = 0.45
#: Rates (1/s) of the decaying components of a partial's pitch glide (a kick's pitch falls
#: with time constants of about 5-100 ms; a tom's more slowly).
GLIDE_RATES = (5.0, 15.0, 45.0, 135.0, 400.0)
#: The glide depth head's initial bias: sigmoid(-2), 12 % of ``ddsp_glide_octaves``, at first.
INIT_GLIDE_BIAS = -2.0
#: The top partial's centre sits this far below the partials' limit, so it can move up too.
TOP_CENTRE_FRACTION = 0.8
#: The transient's last part fades out (half Hann), so cutting the dictionary never clicks.
TRANSIENT_FADE_FRACTION = 0.3
NOISE_SEED = 20230


def frame_count(cfg: TrainConfig) -> int:
    """Envelope frames that cover ``num_samples`` (the envelopes have one point more)."""
    return math.ceil(cfg.num_samples / cfg.ddsp_hop_length)


def sine_centres(cfg: TrainConfig) -> np.ndarray:
    """Each partial's centre frequency (Hz), log-spaced; the top one stays below Nyquist."""
    rate = cfg.sample_rate / cfg.ddsp_sine_downsample
    top = min(cfg.ddsp_sine_max_hz, TOP_CENTRE_FRACTION * MAX_SINE_FRACTION * rate)
    if cfg.ddsp_sines == 1:
        return np.array([cfg.ddsp_sine_min_hz], np.float64)
    return np.geomspace(cfg.ddsp_sine_min_hz, top, cfg.ddsp_sines)


def sine_spread_octaves(cfg: TrainConfig) -> float:
    """How far (octaves) a partial may move from its centre: to its neighbours' centres."""
    centres = sine_centres(cfg)
    if len(centres) < 2:
        return 1.0
    return float(np.log2(centres[1] / centres[0]))


def noise_band_filters(num_bands: int, n_fft_bins: int, sample_rate: int) -> np.ndarray:
    """Triangular mel-scale band responses ``[num_bands, n_fft_bins]`` that sum to one at every
    bin (a partition of unity from 0 Hz to Nyquist: all gains equal give a flat spectrum)."""
    hz = np.linspace(0.0, sample_rate / 2.0, n_fft_bins)
    mel = losses.hz_to_mel(hz)
    edges = np.linspace(
        losses.hz_to_mel(losses.MEL_MIN_HZ), losses.hz_to_mel(sample_rate / 2.0), num_bands
    )
    resp = np.zeros((num_bands, n_fft_bins))
    for b in range(num_bands):
        left = edges[b - 1] if b > 0 else -np.inf
        right = edges[b + 1] if b + 1 < num_bands else np.inf
        rise = np.clip((mel - left) / (edges[b] - left), 0.0, 1.0) if b > 0 else 1.0
        fall = np.clip((right - mel) / (right - edges[b]), 0.0, 1.0) if b + 1 < num_bands else 1.0
        resp[b] = np.where(mel <= edges[b], rise, fall)
    return resp / resp.sum(axis=0, keepdims=True)


def noise_bands(num_bands: int, num_samples: int, sample_rate: int) -> np.ndarray:
    """``[num_samples, num_bands]``: one fixed white noise split into mel bands, each band scaled
    to unit RMS and every value exact in float16 (so ``dkvae-export --small`` halves it)."""
    rng = np.random.default_rng(NOISE_SEED)
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    filters = noise_band_filters(num_bands, spectrum.shape[0], sample_rate)
    bands = np.fft.irfft(spectrum[None, :] * filters, n=num_samples, axis=1)
    bands /= np.sqrt(np.mean(bands**2, axis=1, keepdims=True)) + 1e-12
    return bands.T.astype(np.float16).astype(np.float32)


def _interpolate_frames(values, signals):
    """Signals weighted by gains that are linearly interpolated between frame points.

    ``signals`` ``[..., frames, channels, hop]``, ``values`` ``[batch, frames + 1, channels]``
    (each channel's gain at the frame points): returns
    ``sum_c signal[f, c, s] * gain_c(f + s / hop)`` as ``[batch, frames * hop]``. The gains are
    never upsampled: both ends of every frame go through one batched matrix product, and the
    layout keeps every broadcast in onnxruntime over long contiguous runs (a broadcast over a
    short last axis costs it several times more).
    """
    frames, hop = signals.shape[-3], signals.shape[-1]
    ends = ops.stack([values[:, :-1, :], values[:, 1:, :]], axis=2)  # [b, F, 2, C]
    both = ops.matmul(ends, signals)  # [b, F, 2, hop]
    alpha = np.arange(hop, dtype=np.float32) / hop
    out = both[:, :, 0, :] * ops.convert_to_tensor(1.0 - alpha) + both[:, :, 1, :] * (
        ops.convert_to_tensor(alpha)
    )
    return ops.reshape(out, (-1, frames * hop))


def glide_basis(rate: float, hop: int, frames: int) -> np.ndarray:
    """``[frames, 2 + len(GLIDE_RATES), hop]``: the functions of time whose weighted sum is a
    partial's phase: ``t``, ``1`` and, per glide rate ``r``, ``(1 - exp(-r t)) / r`` (the
    integral of a frequency excess that decays at rate ``r``)."""
    t = np.arange(frames * hop, dtype=np.float64) / rate
    rows = [t, np.ones_like(t)] + [(1.0 - np.exp(-r * t)) / r for r in GLIDE_RATES]
    basis = np.stack(rows)  # [J + 2, samples]
    return basis.reshape(len(rows), frames, hop).transpose(1, 0, 2).astype(np.float32)


class SineBank(layers.Layer):
    """Damped, gliding sinusoids: physical parameters in, ``[batch, frames * hop_length /
    downsample]`` out (at ``sample_rate / downsample``).

    Inputs: ``f_end`` (Hz) and ``phase`` (rad), ``[batch, sines]``; ``glide``
    ``[batch, sines, len(GLIDE_RATES)]`` (Hz: how far above ``f_end`` each decaying component
    starts); ``amplitude`` ``[batch, frames + 1, sines]`` (linear, at the frame points
    ``t = f * hop_length / sample_rate``). Partial ``k`` is ``a_k(t) sin(phase_k + 2 pi int_0^t
    f_k)`` with ``f_k(t) = f_end_k + sum_j glide_kj exp(-r_j t)``: a pitch that falls to
    ``f_end`` as a sum of exponentials. The phase is one matrix product with a fixed basis of
    functions of time (no cumulative sum, no per-sample ``exp``).
    """

    def __init__(
        self, sample_rate: int, hop_length: int, frames: int, downsample: int, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        if hop_length % downsample:
            raise ValueError(
                f"hop_length {hop_length} is not a multiple of downsample {downsample}"
            )
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.frames = frames
        self.downsample = downsample
        self._basis = glide_basis(sample_rate / downsample, hop_length // downsample, frames)[None]

    def call(self, f_end, phase, glide, amplitude):
        two_pi = 2.0 * math.pi
        coeffs = ops.concatenate(
            [two_pi * f_end[..., None], phase[..., None], two_pi * glide], axis=-1
        )  # [b, K, J + 2]
        angle = ops.matmul(coeffs[:, None], ops.convert_to_tensor(self._basis))  # [b, F, K, hop]
        return _interpolate_frames(amplitude, ops.sin(angle))

    def get_config(self) -> dict:
        cfg = super().get_config()
        cfg.update(
            sample_rate=self.sample_rate,
            hop_length=self.hop_length,
            frames=self.frames,
            downsample=self.downsample,
        )
        return cfg


class NoiseBands(layers.Layer):
    """A fixed noise in mel bands, each band scaled by a gain that varies over time.

    Input: ``gains`` ``[batch, frames + 1, bands]`` (linear, at the frame points); output
    ``[batch, frames * hop_length]``. The noise is a constant of the graph.
    """

    def __init__(
        self, sample_rate: int, hop_length: int, frames: int, bands: int, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.frames = frames
        self.bands = bands
        noise = noise_bands(bands, frames * hop_length, sample_rate)
        self._noise = noise.T.reshape(bands, frames, hop_length).transpose(1, 0, 2)[None].copy()

    def call(self, gains):
        return _interpolate_frames(gains, ops.convert_to_tensor(self._noise))  # [1, F, B, hop]

    def get_config(self) -> dict:
        cfg = super().get_config()
        cfg.update(
            sample_rate=self.sample_rate,
            hop_length=self.hop_length,
            frames=self.frames,
            bands=self.bands,
        )
        return cfg


class Transient(layers.Layer):
    """A learned dictionary of short waveforms; ``weights [batch, atoms]`` -> their mix,
    ``[batch, num_samples]`` (zero after the dictionary's length)."""

    def __init__(self, atoms: int, length: int, num_samples: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.atoms = atoms
        self.length = min(length, num_samples)
        self.num_samples = num_samples
        fade = max(1, int(TRANSIENT_FADE_FRACTION * self.length))
        window = np.ones(self.length, np.float32)
        window[-fade:] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(fade) + 1) / fade)
        self._window = window[None, :]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.dictionary = self.add_weight(
            shape=(self.atoms, self.length),
            initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="dictionary",
        )

    def call(self, weights):
        atoms = self.dictionary * ops.convert_to_tensor(self._window)
        out = ops.matmul(weights, atoms)
        return ops.pad(out, [[0, 0], [0, self.num_samples - self.length]])

    def get_config(self) -> dict:
        cfg = super().get_config()
        cfg.update(atoms=self.atoms, length=self.length, num_samples=self.num_samples)
        return cfg


class SineParameters(layers.Layer):
    """Raw head outputs ``[batch, sines, 3 + len(GLIDE_RATES)]`` -> ``(f_end, phase, glide)``
    for :class:`SineBank`, bounded: a partial moves at most ``spread`` octaves from its centre,
    starts at most ``glide_octaves`` above its end frequency, never above ``MAX_SINE_FRACTION`` of
    its rendering rate (so it never aliases)."""

    def __init__(self, cfg: TrainConfig, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._log2_centres = np.log2(sine_centres(cfg)).astype(np.float32)[None, :]
        self.spread = sine_spread_octaves(cfg)
        self.glide_octaves = cfg.ddsp_glide_octaves
        self.log2_max_hz = math.log2(MAX_SINE_FRACTION * cfg.sample_rate / cfg.ddsp_sine_downsample)

    def call(self, raw):
        centres = ops.convert_to_tensor(self._log2_centres)
        log2_end = ops.minimum(centres + self.spread * ops.tanh(raw[..., 0]), self.log2_max_hz)
        f_end = ops.power(2.0, log2_end)
        phase = math.pi * ops.tanh(raw[..., 1])
        depth = ops.minimum(
            self.glide_octaves * ops.sigmoid(raw[..., 2]), self.log2_max_hz - log2_end
        )
        excess = f_end * (ops.power(2.0, depth) - 1.0)  # start frequency minus end frequency
        glide = excess[..., None] * ops.softmax(raw[..., 3:], axis=-1)
        return f_end, phase, glide


class _Levels(layers.Layer):
    """Log levels at frame rate -> linear levels at the ``frames + 1`` frame points."""

    def __init__(self, points: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.points = points

    def call(self, log_levels):
        return ops.exp(ops.minimum(log_levels[:, : self.points, :], MAX_LOG_LEVEL))


def build_decoder(cfg: TrainConfig) -> keras.Model:
    """The conditional DDSP decoder ``(z, class_index) -> audio``."""
    if len(cfg.channels) != NUM_UPSAMPLES + 1:
        raise ValueError(f"channels must list {NUM_UPSAMPLES + 1} widths, got {cfg.channels}")
    frames = frame_count(cfg)
    points = frames + 1
    coarse = math.ceil(points / 2**NUM_UPSAMPLES)
    k, bands = cfg.ddsp_sines, cfg.ddsp_noise_bands
    transient_len = round(cfg.ddsp_transient_ms * cfg.sample_rate / 1000.0)

    z, class_index, cond = decoder_inputs(cfg)

    # per-hit heads: partials' frequencies, glides, phases; the transient's mix
    n_raw = 3 + len(GLIDE_RATES)
    sine_bias = np.zeros((k, n_raw), np.float32)
    sine_bias[:, 2] = INIT_GLIDE_BIAS
    raw = layers.Dense(
        k * n_raw,
        name="sine_params",
        kernel_initializer=keras.initializers.VarianceScaling(0.1),
        bias_initializer=keras.initializers.Constant(sine_bias.reshape(-1)),
    )(cond)
    raw = layers.Reshape((k, n_raw))(raw)
    f_end, phase, glide = SineParameters(cfg, name="sine_mapping")(raw)
    mix = layers.Dense(cfg.ddsp_transient_atoms, name="transient_mix")(cond)

    # per-frame heads: partials' amplitudes and noise bands' gains (log)
    x = conditioned_trunk(cfg, cond, coarse)
    head_bias = np.concatenate(
        [np.full(k, INIT_SINE_LOG_AMP), np.full(bands, INIT_NOISE_LOG_GAIN)]
    ).astype(np.float32)
    levels = layers.Conv1D(
        k + bands,
        1,
        name="levels",
        kernel_initializer=keras.initializers.VarianceScaling(0.1),
        bias_initializer=keras.initializers.Constant(head_bias),
    )(x)
    levels = _Levels(points, name="levels_linear")(levels)
    amplitude = layers.Lambda(lambda v: v[..., :k], name="sine_amplitude")(levels)
    gains = layers.Lambda(lambda v: v[..., k:], name="noise_gains")(levels)

    sines = SineBank(
        cfg.sample_rate, cfg.ddsp_hop_length, frames, cfg.ddsp_sine_downsample, name="sines"
    )(f_end, phase, glide, amplitude)
    if cfg.ddsp_sine_downsample > 1:
        sines = Upsample(cfg.ddsp_sine_downsample, cfg.num_samples, name="sines_up")(sines)
    noise = NoiseBands(cfg.sample_rate, cfg.ddsp_hop_length, frames, bands, name="noise")(gains)
    transient = Transient(
        cfg.ddsp_transient_atoms, transient_len, cfg.num_samples, name="transient"
    )(mix)
    crop = layers.Lambda(lambda v: v[:, : cfg.num_samples], name="crop")
    audio = layers.Add(name="audio")([crop(sines), crop(noise), transient])
    return keras.Model([z, class_index], audio, name="decoder")


class DDSPVAE(ConditionalVAE):
    """The ``vae`` kind's encoder, losses and training loop with the DDSP decoder."""

    def __init__(self, cfg: TrainConfig, **kwargs: object) -> None:
        super().__init__(cfg, decoder=build_decoder(cfg), **kwargs)
