"""``dkvae-train``: a bank and a config in, a run folder out.

A run folder holds::

    config.json            the resolved TrainConfig (export and evaluation read it back)
    run.json               where the data came from, and the command line
    train.log              the training log
    history.csv            one row of metrics per epoch (appended on resume)
    tensorboard/           TensorBoard logs
    checkpoints/           last.weights.h5, optimizer.npz, state.json (what --resume needs)
    best.weights.h5        the weights with the lowest validation loss so far
    summary.json           written when training stops: epochs, time, best validation loss, why

Training stops at ``epochs``, on early stopping (``patience`` epochs without a better validation
loss), or when ``max_minutes`` of training (summed over resumes) have passed; there is no time
budget unless one is set. Ctrl-C stops it too: the last finished epoch stays for ``--resume``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import MODEL_KINDS, TrainConfig, load_config, make_config, save_config

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass
class Arrays:
    """The part of a bank that training uses (``BankArrays`` from the bank module fits it)."""

    audio: np.ndarray  # float32 [N, num_samples]
    labels: np.ndarray  # int64 [N]
    class_names: tuple[str, ...]


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    epochs_done: int
    best_val_loss: float
    train_seconds: float
    stop_reason: str
    history: dict[str, list[float]]


def pitch_shifted(arrays: Arrays, semitones: Sequence[float], sample_rate: int) -> Arrays:
    """``arrays`` followed by a copy at each shift in ``semitones``, each sound played at
    ``2 ** (shift / 12)`` times its speed, cut or zero-padded to its length and peak-normalised
    again (the encoder's input is peak-normalised)."""
    import soxr

    audio, labels = [arrays.audio], [arrays.labels]
    n = arrays.audio.shape[1]
    for shift in semitones:
        rate = sample_rate * 2.0 ** (float(shift) / 12.0)
        copy = np.zeros_like(arrays.audio)
        for i, sound in enumerate(arrays.audio):
            moved = soxr.resample(sound, rate, sample_rate, quality="HQ")[:n]
            copy[i, : len(moved)] = moved / max(float(np.max(np.abs(moved))), 1e-9)
        audio.append(copy)
        labels.append(arrays.labels)
    return Arrays(np.concatenate(audio), np.concatenate(labels), arrays.class_names)


def make_dataset(
    arrays: Arrays,
    batch_size: int,
    *,
    shuffle: bool,
    gain_augment_db: float = 0.0,
    seed: int = 0,
    drop_remainder: bool = False,
) -> Any:
    """A ``tf.data.Dataset`` of ``(audio, labels)`` batches (random gain when augmenting)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(
        (arrays.audio.astype(np.float32), arrays.labels.astype(np.int64))
    )
    if shuffle:
        ds = ds.shuffle(len(arrays.labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if gain_augment_db > 0.0:
        db = float(gain_augment_db)

        def augment(audio: Any, labels: Any) -> Any:
            gain = tf.pow(10.0, tf.random.uniform((tf.shape(audio)[0], 1), -db, 0.0) / 20.0)
            return audio * gain, labels

        ds = ds.map(augment, num_parallel_calls=1)
    return ds.prefetch(2)


def _optimizers(model: Any) -> list[tuple[Any, list[Any]]]:
    """Every optimizer of a model with the variables it updates."""
    if getattr(model, "discriminator", None) is not None:
        return [
            (model.optimizer, model.decoder.trainable_variables),
            (model.d_optimizer, model.discriminator.trainable_variables),
        ]
    return [(model.optimizer, model.trainable_variables)]


def save_optimizer_state(model: Any, path: Path) -> None:
    values = [np.asarray(var) for opt, _ in _optimizers(model) for var in opt.variables]
    written(path, lambda tmp: np.savez(tmp, *values))


def written(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through a temporary file beside it (same suffix, which Keras and numpy
    insist on), renamed into place: a Ctrl-C mid-write leaves the old file, never a torn one."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_optimizer_state(model: Any, path: Path) -> None:
    data = np.load(path)
    k = 0
    for opt, variables in _optimizers(model):
        if not opt.built:
            opt.build(variables)
        for var in opt.variables:
            value = data[f"arr_{k}"]
            k += 1
            if tuple(value.shape) != tuple(var.shape):
                raise ValueError(f"optimizer state {path} does not fit this model")
            var.assign(value)


def _callback_class() -> Any:
    """The run-folder callback (defined lazily so that importing this module needs no Keras):
    best/last checkpoints, early stopping and the time budget, all persisted for ``--resume``."""
    import keras

    class _RunFolder(keras.callbacks.Callback):
        def __init__(
            self, run_dir: Path, cfg: TrainConfig, state: dict[str, Any], monitor: str
        ) -> None:
            super().__init__()
            self.run_dir = run_dir
            self.cfg = cfg
            self.state = state
            self.monitor = monitor
            self.started = time.monotonic()
            self.trained_before = float(state["train_seconds"])  # by earlier runs of this folder
            self.stop_reason = "epochs"

        def elapsed(self) -> float:
            return self.trained_before + time.monotonic() - self.started

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            value = float(logs.get(self.monitor, np.nan))
            ckpt = self.run_dir / CHECKPOINT_DIR
            ckpt.mkdir(exist_ok=True)
            if np.isfinite(value) and value < self.state["best"]:
                self.state["best"] = value
                self.state["best_epoch"] = epoch + 1
                self.state["wait"] = 0
                best = self.run_dir / "best.weights.h5"
                written(best, lambda tmp: self.model.save_weights(str(tmp)))
            else:
                self.state["wait"] += 1
            if not np.isfinite(float(logs.get("loss", np.nan))):
                self.stop_reason = "loss is not finite"
                self.model.stop_training = True
            elapsed = self.elapsed()
            self.state.update(
                epoch=epoch + 1,
                train_seconds=elapsed,
                learning_rate=float(np.asarray(self.model.optimizer.learning_rate)),
            )
            written(ckpt / "last.weights.h5", lambda tmp: self.model.save_weights(str(tmp)))
            save_optimizer_state(self.model, ckpt / "optimizer.npz")
            text = json.dumps(self.state, indent=2) + "\n"
            written(ckpt / "state.json", lambda tmp: tmp.write_text(text))
            logger.info(
                "epoch %d: %s; best %s %.5f (epoch %d); %.1f min",
                epoch + 1,
                ", ".join(f"{k} {v:.4g}" for k, v in sorted(logs.items())),
                self.monitor,
                self.state["best"],
                self.state["best_epoch"],
                elapsed / 60.0,
            )
            if self.state["wait"] >= self.cfg.patience:
                self.stop_reason = (
                    f"early stopping ({self.cfg.patience} epochs without a better {self.monitor})"
                )
                self.model.stop_training = True
            for minutes in self.cfg.snapshot_minutes:
                snap = self.run_dir / "snapshots" / f"best_at_{minutes:g}min.weights.h5"
                if elapsed >= minutes * 60.0 and not snap.exists():
                    # the best weights after `minutes` of training: equal-time comparisons
                    snap.parent.mkdir(exist_ok=True)
                    shutil.copyfile(self.run_dir / "best.weights.h5", snap)
            if self.cfg.max_minutes > 0 and elapsed >= self.cfg.max_minutes * 60.0:
                self.stop_reason = f"time budget of {self.cfg.max_minutes:g} min reached"
                self.model.stop_training = True

    return _RunFolder


def initial_state() -> dict[str, Any]:
    return {"epoch": 0, "best": float("inf"), "best_epoch": 0, "wait": 0, "train_seconds": 0.0}


def train(
    cfg: TrainConfig,
    run_dir: Path,
    train_arrays: Arrays,
    val_arrays: Arrays | None,
    *,
    resume: bool = False,
    smoke_test: bool = False,
    verbose: int | str = 1,
) -> RunResult:
    """Train ``cfg`` into ``run_dir`` (with ``resume``: continue the run saved there)."""
    import keras
    import tensorflow as tf

    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT_DIR
    if smoke_test:
        cfg = dataclasses.replace(cfg, epochs=min(cfg.epochs, 2), max_minutes=0.0)
    if resume:
        state = json.loads((ckpt / "state.json").read_text())
    else:
        if (ckpt / "state.json").exists():
            raise FileExistsError(f"{run_dir} already holds a run; use --resume to continue it")
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.json")
        state = initial_state()
    keras.utils.set_random_seed(cfg.seed + int(state["epoch"]))

    from .models import build_model

    model = build_model(cfg)
    lr = float(state.get("learning_rate", cfg.learning_rate))
    model.compile(optimizer=keras.optimizers.Adam(lr, beta_1=0.5 if cfg.kind == "cgan" else 0.9))
    if resume:
        model.load_weights(str(ckpt / "last.weights.h5"))
        load_optimizer_state(model, ckpt / "optimizer.npz")
        model.optimizer.learning_rate.assign(lr)
        logger.info(
            "resuming %s at epoch %d (%.1f min trained)",
            run_dir,
            state["epoch"],
            state["train_seconds"] / 60.0,
        )
    logger.info(
        "model %s: %d parameters (decoder %d)",
        cfg.kind,
        model.count_params(),
        model.decoder.count_params(),
    )

    if cfg.pitch_augment_semitones:
        train_arrays = pitch_shifted(train_arrays, cfg.pitch_augment_semitones, cfg.sample_rate)
        logger.info(
            "pitch shifts %s: %d training sounds",
            cfg.pitch_augment_semitones,
            len(train_arrays.labels),
        )
    train_ds = make_dataset(
        train_arrays,
        cfg.batch_size,
        shuffle=True,
        gain_augment_db=cfg.gain_augment_db,
        seed=cfg.seed,
        drop_remainder=len(train_arrays.labels) >= cfg.batch_size,
    )
    val_ds = None
    if val_arrays is not None and len(val_arrays.labels) > 0:
        val_ds = make_dataset(val_arrays, cfg.batch_size, shuffle=False)
    if smoke_test:
        train_ds = train_ds.take(2)
        val_ds = val_ds.take(1) if val_ds is not None else None
    monitor = "val_loss" if val_ds is not None else "loss"
    if cfg.kind == "cgan":
        monitor = "g_loss" if val_ds is None else "val_g_loss"

    run_folder = _callback_class()(run_dir, cfg, state, monitor)
    callbacks = [
        run_folder,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False),
    ]
    if cfg.kind != "cgan":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                factor=0.5,
                patience=max(3, cfg.patience // 4),
                min_lr=cfg.min_learning_rate,
                verbose=0,
            )
        )
    history: dict[str, list[float]] = {}
    if int(state["epoch"]) < cfg.epochs:
        tf.config.run_functions_eagerly(False)
        hist = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.epochs,
            initial_epoch=int(state["epoch"]),
            callbacks=callbacks,
            verbose=verbose,
        )
        history = {k: [float(x) for x in v] for k, v in hist.history.items()}
    else:
        run_folder.stop_reason = f"already trained {state['epoch']} of {cfg.epochs} epochs"
    if not (run_dir / "best.weights.h5").exists():
        model.save_weights(str(run_dir / "best.weights.h5"))
    result = RunResult(
        run_dir,
        int(state["epoch"]),
        float(state["best"]),
        float(state["train_seconds"]),
        run_folder.stop_reason,
        history,
    )
    (run_dir / "summary.json").write_text(
        json.dumps(
            {
                "kind": cfg.kind,
                "epochs_done": result.epochs_done,
                "best_val_loss": result.best_val_loss,
                "best_epoch": state["best_epoch"],
                "train_minutes": result.train_seconds / 60.0,
                "stop_reason": result.stop_reason,
                "config_hash": cfg.hash(),
            },
            indent=2,
        )
        + "\n"
    )
    logger.info(
        "stopped after %d epochs (%s); %.1f min; best %s %.5f",
        result.epochs_done,
        result.stop_reason,
        result.train_seconds / 60.0,
        monitor,
        result.best_val_loss,
    )
    return result


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are parsed as JSON when they can be (numbers, lists)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_arrays(bank: Path, split: str, cfg: TrainConfig, cache_dir: Path | None) -> Arrays:
    from .bank import load_split

    arrays = load_split(
        bank, split, sample_rate=cfg.sample_rate, num_samples=cfg.num_samples, cache_dir=cache_dir
    )
    return Arrays(arrays.audio, arrays.labels, tuple(arrays.class_names))


def synthetic_arrays(per_class: int, cfg: TrainConfig, seed: int) -> Arrays:
    from .synthetic import synthetic_drums

    audio, labels = synthetic_drums(
        per_class,
        sample_rate=cfg.sample_rate,
        num_samples=cfg.num_samples,
        class_names=cfg.class_names,
        seed=seed,
    )
    return Arrays(audio, labels, cfg.class_names)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dkvae-train", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path, help="run folder to create (or to continue with --resume)")
    p.add_argument("--config", choices=MODEL_KINDS, default="vae", help="model kind (default vae)")
    p.add_argument("--bank", type=Path, help="bank folder (see dkvae-bank)")
    p.add_argument("--cache-dir", type=Path, help="where the bank loader caches cleaned audio")
    p.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="train on N generated sounds per class instead of a bank (development)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config setting (repeatable), e.g. --set latent_size=16",
    )
    p.add_argument("--epochs", type=int, help="shorthand for --set epochs=N")
    p.add_argument("--max-minutes", type=float, help="shorthand for --set max_minutes=M")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    p.add_argument("--smoke-test", action="store_true", help="train 2 epochs of 2 steps")
    p.add_argument(
        "--strategy",
        choices=("none", "mirrored", "multiworker"),
        default="none",
        help="tf.distribute strategy (custom training loop; vae and seed_vae)",
    )
    p.add_argument("--workers", help="multiworker: comma-separated host:port of every worker")
    p.add_argument("--worker-index", type=int, default=0, help="multiworker: this worker's index")
    p.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="Keras progress display: 1 bar, 2 one line per epoch (for log files)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(run_dir / "train.log")],
        force=True,
    )
    try:
        overrides = parse_overrides(args.set)
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        if args.max_minutes is not None:
            overrides["max_minutes"] = args.max_minutes
        if args.resume:
            cfg = load_config(run_dir / "config.json")
            source = json.loads((run_dir / "run.json").read_text())
            if overrides:
                # a resumed run may change settings (more epochs, a loss weight); the change is
                # recorded in run.json so the run can be reproduced
                settings = dataclasses.asdict(cfg)
                settings.pop("kind")
                cfg = make_config(cfg.kind, **{**settings, **overrides})
                state_path = run_dir / CHECKPOINT_DIR / "state.json"
                state = json.loads(state_path.read_text())
                source.setdefault("resumes", []).append(
                    {"at_epoch": state["epoch"], "overrides": overrides, "command": sys.argv}
                )
                if set(overrides) - {"epochs", "max_minutes", "patience", "snapshot_minutes"}:
                    # the objective changed: earlier validation losses are not comparable
                    state.update(best=float("inf"), wait=0)
                    state_path.write_text(json.dumps(state, indent=2) + "\n")
                (run_dir / "run.json").write_text(json.dumps(source, indent=2) + "\n")
                save_config(cfg, run_dir / "config.json")
                logger.info("resuming with changed settings: %s", overrides)
            bank = Path(source["bank"]) if source.get("bank") else None
            synthetic = source.get("synthetic")
            cache_dir = Path(source["cache_dir"]) if source.get("cache_dir") else None
        else:
            cfg = make_config(args.config, **overrides)
            bank, synthetic, cache_dir = args.bank, args.synthetic, args.cache_dir
            if (bank is None) == (synthetic is None):
                raise ValueError("give exactly one of --bank or --synthetic")
        if bank is not None:
            train_arrays = load_arrays(bank, "train", cfg, cache_dir)
            val_arrays: Arrays | None = load_arrays(bank, "validation", cfg, cache_dir)
            cfg = dataclasses.replace(cfg, class_names=train_arrays.class_names)
        else:
            train_arrays = synthetic_arrays(int(synthetic), cfg, seed=cfg.seed)
            val_arrays = synthetic_arrays(max(1, int(synthetic) // 4), cfg, seed=cfg.seed + 1)
        if not args.resume:
            (run_dir / "run.json").write_text(
                json.dumps(
                    {
                        "bank": str(bank.resolve()) if bank else None,
                        "synthetic": synthetic,
                        "cache_dir": str(cache_dir.resolve()) if cache_dir else None,
                        "train_sounds": len(train_arrays.labels),
                        "validation_sounds": len(val_arrays.labels) if val_arrays else 0,
                        "command": sys.argv,
                        "strategy": args.strategy,
                    },
                    indent=2,
                )
                + "\n"
            )
        logger.info(
            "%s: %d training / %d validation sounds, classes %s",
            cfg.kind,
            len(train_arrays.labels),
            len(val_arrays.labels) if val_arrays else 0,
            list(cfg.class_names),
        )
        logger.info(
            "stops after epoch %d, after %d epochs without a better validation loss, or %s; "
            "Ctrl-C stops it keeping the last finished epoch for --resume",
            cfg.epochs,
            cfg.patience,
            f"after {cfg.max_minutes:g} min of training"
            if cfg.max_minutes > 0
            else "never on time (no budget: --max-minutes M sets one)",
        )
        if args.strategy != "none":
            from .distributed import train_distributed

            train_distributed(
                cfg,
                run_dir,
                train_arrays,
                val_arrays,
                strategy=args.strategy,
                workers=args.workers,
                worker_index=args.worker_index,
                resume=args.resume,
                smoke_test=args.smoke_test,
                verbose=args.verbose,
            )
        else:
            train(
                cfg,
                run_dir,
                train_arrays,
                val_arrays,
                resume=args.resume,
                smoke_test=args.smoke_test,
                verbose=args.verbose,
            )
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        logger.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        logger.warning("%s", interrupted_message(run_dir))
        return 130  # as a shell reports a process ended by SIGINT
    return 0


def interrupted_message(run_dir: Path) -> str:
    """What a Ctrl-C left: the run folder's last finished epoch, and how to go on."""
    state_path = run_dir / CHECKPOINT_DIR / "state.json"
    try:
        epoch = int(json.loads(state_path.read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        epoch = 0
    if epoch == 0:
        return f"stopped by Ctrl-C before the first epoch ended; nothing to resume in {run_dir}"
    return (
        f"stopped by Ctrl-C; {run_dir} keeps epoch {epoch}: "
        f"dkvae-train --resume {run_dir} continues from there"
    )


if __name__ == "__main__":
    sys.exit(main())
