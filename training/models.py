"""Build any model kind from a config, and rebuild a trained one from a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dkvae_live.contract import LOG_MAGNITUDE, WAVEFORM

from .config import TrainConfig, load_config
from .run_folder import BEST_WEIGHTS, CONFIG, LAST_WEIGHTS

# model kind -> the contract's output kind of its exported decoder
OUTPUT_KINDS = {
    "vae": WAVEFORM,
    "seed_vae": LOG_MAGNITUDE,
    "cgan": LOG_MAGNITUDE,
    "ddsp": WAVEFORM,
}


def build_model(cfg: TrainConfig) -> Any:
    """A built (all variables created) training model for ``cfg.kind``."""
    if cfg.kind == "vae":
        from .vae import ConditionalVAE

        model: Any = ConditionalVAE(cfg, name="vae")
    elif cfg.kind == "seed_vae":
        from .seed_vae import SeedVAE

        model = SeedVAE(cfg, name="seed_vae")
    elif cfg.kind == "ddsp":
        from .ddsp import DDSPVAE

        model = DDSPVAE(cfg, name="ddsp")
    elif cfg.kind == "cgan":
        from .cgan import ConditionalGAN

        model = ConditionalGAN(cfg, name="cgan")
    else:
        raise ValueError(f"unknown model kind {cfg.kind!r}")
    audio = np.zeros((1, cfg.num_samples), np.float32)
    labels = np.zeros((1,), np.int64)
    if cfg.kind == "cgan":
        z = np.zeros((1, cfg.latent_size), np.float32)
        fake = model((z, labels))
        model.discriminator([np.asarray(fake), labels])
    else:
        model((audio, labels))
    return model


def load_trained(run_dir: Path, checkpoint: str = "best") -> tuple[TrainConfig, Any]:
    """The config and the model of a run folder with weights loaded.

    ``checkpoint``: ``best``, ``last``, or a weights file relative to the run folder (for example
    ``snapshots/best_at_20min.weights.h5``).
    """
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / CONFIG)
    names = {"best": BEST_WEIGHTS, "last": LAST_WEIGHTS}
    path = run_dir / names.get(checkpoint, checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {checkpoint} weights in run folder {run_dir}")
    model = build_model(cfg)
    model.load_weights(str(path))
    return cfg, model


def build_for_export(run_dir: Path, checkpoint: str = "best") -> tuple[TrainConfig, Any, Any, str]:
    """(config, decoder, encoder or None, output_kind) of a trained run."""
    cfg, model = load_trained(run_dir, checkpoint)
    return cfg, model.decoder, getattr(model, "encoder", None), OUTPUT_KINDS[cfg.kind]
