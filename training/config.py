"""Training configurations: one flat, JSON-serialisable dataclass and a preset per model kind.

A run folder holds the resolved configuration (``config.json``); export and evaluation read it
back with :func:`load_config`, so a model is always rebuilt exactly as it was trained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from dkvae_live.labels import CLASS_NAMES_DEFAULT

MODEL_KINDS = ("vae", "seed_vae", "cgan", "ddsp")


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run. Fields that a kind does not use are ignored by it."""

    kind: str = "vae"
    sample_rate: int = 44100
    num_samples: int = 44100
    latent_size: int = 8
    class_names: tuple[str, ...] = CLASS_NAMES_DEFAULT

    # optimisation
    batch_size: int = 16
    epochs: int = 400
    learning_rate: float = 5e-4
    min_learning_rate: float = 5e-5
    patience: int = 40
    max_minutes: float = 0.0  # wall-clock budget; 0 = none
    snapshot_minutes: tuple[float, ...] = (20.0, 40.0)  # keep the best weights at these times
    seed: int = 0
    gain_augment_db: float = 3.0
    # the training split again at each of these pitch shifts (sampler-style: the sound is played
    # faster or slower, so it gets shorter or longer too); a bank of a few kits per class
    # generalises poorly to unseen kits, and a drum's tuning is what differs most between kits
    pitch_augment_semitones: tuple[float, ...] = ()
    # each training sound through a random spectral tilt of up to this many dB per octave either
    # way (about 1 kHz, at most EQ_TILT_CAP_DB), then peak-normalised again: kits differ in
    # their microphones and EQ as much as in their tuning, and the decoder learns its kits'
    eq_tilt_augment_db: float = 0.0

    # conditional VAE ("vae"): decoder
    n_fft: int = 256
    hop_length: int = 128
    channels: tuple[int, ...] = (192, 128, 96, 64)  # coarse -> frame rate (3 doublings)
    kernel_sizes: tuple[int, ...] = (3, 3, 3, 1)
    max_frequency: float = 0.0  # Hz; STFT bins above are not predicted (0 = all)
    phase_max_frequency: float = 6000.0  # Hz; bins above get a fixed random phase (0 = none)
    phase_advance: bool = False  # add each bin's steady-state phase advance (vae preset: on)
    remove_dc: bool = False  # subtract the output's mean (vae preset: on)
    residual: bool = False  # an extra residual Conv1D at frame rate
    coarse_channels: int = 32
    embedding_size: int = 16
    lowband_per_hop: int = 1  # low-band waveform samples predicted per STFT hop
    max_log_magnitude: float = 4.0
    # conditional VAE: encoder
    enc_n_fft: int = 1024
    enc_hop_length: int = 256
    enc_channels: tuple[int, ...] = (128, 128, 128, 128)
    # conditional VAE: loss
    stft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64)
    mstft_weight: float = 1.0
    log_mse_weight: float = 0.05  # the seed's reconstruction term (MSE on the log spectrogram)
    lowband_weight: float = 5.0
    lowband_factor: int = 32
    kl_weight: float = 0.02
    kl_warmup_steps: int = 2000
    free_bits: float = 0.0

    # percussive DDSP decoder ("ddsp", training/ddsp.py); its trunk uses channels, kernel_sizes,
    # coarse_channels and embedding_size above, its encoder and losses the vae's settings
    ddsp_hop_length: int = 256  # output samples per envelope frame
    ddsp_sines: int = 16
    ddsp_sine_min_hz: float = 30.0  # partials' centres, log-spaced
    ddsp_sine_max_hz: float = 4000.0
    ddsp_sine_downsample: int = 4  # partials are rendered at sample_rate / this
    ddsp_glide_octaves: float = 2.0  # deepest downward pitch glide of a partial
    ddsp_noise_bands: int = 16
    ddsp_transient_atoms: int = 64
    ddsp_transient_ms: float = 40.0
    # log-mel L1 term (ddsp): weight, STFT sizes (hop a quarter), mel bands
    mel_weight: float = 0.0
    mel_sizes: tuple[int, ...] = (2048, 512)
    mel_bands: int = 96

    # seed spectrogram VAE / cGAN: the seed's log-magnitude STFT
    spec_n_fft: int = 512
    spec_hop_length: int = 128
    log_offset: float = 1e-6
    gan_noise_size: int = 8
    # seed_vae with its decoder conditioned on the class (the bake-off's design b)
    spec_conditional: bool = False
    # "conv2d": the seed's 2-D transposed convs; "conv1d": convs over time with the frequency
    # bins as channels, each bin its own weights, at a third of the 2-D design's arithmetic
    spec_decoder: str = "conv2d"
    # "flat": every STFT bin weighs the same in the log-magnitude MSE (the seed's loss); "mel":
    # each bin by the mel scale's density there, mean 1, so that the few bins under 1 kHz, which
    # the ear and the mel distance resolve finely, weigh as much as the many bins above
    spec_loss_weighting: str = "flat"
    # weight of issue 18's mel distance (dB, on the decoder's magnitudes) beside the log-MSE; the
    # log-MSE alone spends most of its gradient on bins 80-120 dB under the peak
    spec_mel_db_weight: float = 0.0
    # seed_vae's adversarial stage (issue 18, as RAVE's second stage): > 0 trains the decoder
    # alone (the encoder frozen) against multi-scale discriminators on its log magnitudes, with
    # this weight on their hinge loss and feature matching beside the losses above
    adversarial_weight: float = 0.0
    discriminator_learning_rate: float = 1e-4
    discriminator_scales: int = 3  # each scale halves the spectrogram in time and frequency
    # seed_vae's encoder stage: trains the encoder alone, the decoder frozen. On kits it never
    # saw, a latent fitted through the decoder reconstructs closer than the encoder's own, by
    # more than on its training kits: the encoder generalises worse than the decoder
    # (bench/latent_fit.py)
    encoder_stage: bool = False

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def hash(self) -> str:
        """A short stable hash of the settings that shape the model and its training."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


PRESETS: dict[str, dict[str, Any]] = {
    "vae": {"phase_advance": True, "log_mse_weight": 0.5, "remove_dc": True},
    "seed_vae": {"learning_rate": 1e-3, "kl_weight": 1e-3, "kl_warmup_steps": 0},
    "cgan": {"learning_rate": 2e-4, "patience": 1000},
    "ddsp": {"learning_rate": 1e-3, "log_mse_weight": 0.0, "mel_weight": 1.0},
}


def make_config(kind: str, **overrides: Any) -> TrainConfig:
    """The preset for ``kind`` with ``overrides`` applied (unknown keys raise ``ValueError``)."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"config must be one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    settings: dict[str, Any] = {**PRESETS[kind], **overrides, "kind": kind}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}")
    return _coerce(settings)


def _coerce(settings: dict[str, Any]) -> TrainConfig:
    cfg = TrainConfig(**settings)
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if isinstance(value, list):
            setattr(cfg, f.name, tuple(value))
    return cfg


def save_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(cfg.to_json() + "\n")


def load_config(path: Path) -> TrainConfig:
    """Read ``config.json`` (a run folder's resolved config) back into a :class:`TrainConfig`."""
    data = json.loads(Path(path).read_text())
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return _coerce({k: v for k, v in data.items() if k in fields})
